"""Models: run time (:mod:`.duration`), plus other areas' models in sibling modules."""
