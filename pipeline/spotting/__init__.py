"""Spotting macro- and micro-expressions in long videos, and naming what was spotted."""
