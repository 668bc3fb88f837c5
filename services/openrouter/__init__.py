"""The OpenRouter bounded context: model catalog and prices, the rate card, per-user and BYOK keys."""
