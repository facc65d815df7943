"""The knowledge base: Chinese-first FAQ and document retrieval (jieba + BM25 + character/pinyin grams).

:func:`open_knowledge_base` builds a started :class:`KnowledgeBase` from settings; it implements the engine's
:class:`~kefu.kb.knowledge.Knowledge` protocol. See docs/kb.md.
"""

from __future__ import annotations

from kefu.kb.factory import open_knowledge_base
from kefu.kb.service import KnowledgeBase

__all__ = ["KnowledgeBase", "open_knowledge_base"]
