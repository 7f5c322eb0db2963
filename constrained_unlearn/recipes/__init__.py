"""Recipes: short, readable end-to-end runs composed from the layers below (config → run)."""

__all__: list[str] = []  # the recipes are modules: import them by name
