//! agents: LLM trading agents — tools, model-day sessions, simulation jobs.
