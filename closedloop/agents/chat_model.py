"""The chat-model factory: an OpenAI-compatible model when configured, else the offline policy."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from closedloop.agents.offline import OfflineRulePolicy, OfflineStep
from closedloop.settings import Settings


def make_chat_model(settings: Settings, agent: str, offline_step: OfflineStep) -> BaseChatModel:
    """The model an agent talks to.

    With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set this is a real
    OpenAI-compatible chat model; otherwise the offline, deterministic,
    rule-based policy ``offline_step`` of ``agent``.
    """
    if not settings.uses_llm:
        return offline_model(agent, offline_step)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.openai_model,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed",
        base_url=settings.openai_base_url,
        temperature=0,
        timeout=60,
        max_retries=1,
    )


def offline_model(agent: str, offline_step: OfflineStep) -> BaseChatModel:
    """The offline rule-based policy of one agent (also the fallback for invalid LLM output)."""
    return OfflineRulePolicy(agent=agent, step=offline_step)
