"""Recipes: short, readable end-to-end runs composed from the layers below (config → run)."""
