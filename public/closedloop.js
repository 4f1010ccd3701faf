// closedloop chat: the view follows new messages.
//
// Chainlit 2.12 scrolls only when a typed user message exists, and not when a message grows
// after it is shown (an image loading, a step streaming). This keeps the conversation pinned to
// its newest content while the person is at the bottom; scrolling up to read stops it, and
// scrolling back down, typing a message or pressing a button starts it again. Only scrolls the
// person makes (wheel, touch, keys, the scrollbar) count: Chainlit's own smooth scrolling does not.
(() => {
  "use strict";
  let container = null;
  let stick = true;
  let lastTop = 0;
  let touchedAt = 0; // when the person last scrolled by hand
  const SLACK = 80; // px from the bottom that still counts as "at the bottom"

  const atBottom = (el) => el.scrollTop + el.clientHeight >= el.scrollHeight - SLACK;

  function scroller() {
    const step = document.querySelector(".step");
    for (let el = step && step.parentElement; el && el !== document.body; el = el.parentElement) {
      const overflow = getComputedStyle(el).overflowY;
      if (overflow === "auto" || overflow === "scroll") return el;
    }
    return null;
  }

  function onScroll() {
    if (!container) return;
    const top = container.scrollTop;
    if (performance.now() - touchedAt < 1000) {
      if (top < lastTop - 4 && !atBottom(container)) stick = false;
      else if (atBottom(container)) stick = true;
    }
    lastTop = top;
  }
  const byHand = () => {
    touchedAt = performance.now();
  };
  for (const type of ["wheel", "touchmove"]) {
    document.addEventListener(type, byHand, { capture: true, passive: true });
  }
  // A press on the conversation's own box is its scrollbar; presses on buttons are not scrolling.
  document.addEventListener("mousedown", (e) => {
    if (container && e.target === container) byHand();
  }, { capture: true, passive: true });

  function follow() {
    const found = scroller();
    if (found && found !== container) {
      if (container) container.removeEventListener("scroll", onScroll);
      container = found;
      container.addEventListener("scroll", onScroll, { passive: true });
      stick = true;
    }
    if (container && stick) {
      container.scrollTop = container.scrollHeight;
      lastTop = container.scrollTop;
    }
  }

  let queued = false;
  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      follow();
    });
  }

  const resume = () => {
    stick = true;
    schedule();
  };
  new MutationObserver(schedule).observe(document.documentElement, {
    childList: true,
    subtree: true,
    characterData: true,
  });
  document.addEventListener("load", schedule, true); // images change the height after they arrive
  document.addEventListener("click", (e) => {
    if (e.target instanceof Element && e.target.closest("button")) resume();
  }, true);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target instanceof Element && e.target.closest("#chat-input")) resume();
    else if (["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End", " "].includes(e.key)) byHand();
  }, true);
  window.addEventListener("resize", schedule);
})();
