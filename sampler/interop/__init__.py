"""Our sampling chain inside other libraries: a transformers ``LogitsProcessor``."""
