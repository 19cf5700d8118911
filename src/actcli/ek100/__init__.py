"""EPIC-KITCHENS-100: annotations, media, windows, metrics and submission files."""
