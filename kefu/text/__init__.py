"""Text processing shared by the knowledge base, flows and the engine (a leaf: imports nothing else of kefu).

Normalisation (width, case, traditional → simplified), digits as people type them, pinyin, segmentation
(jieba plus a bot's lexicon) and the in-memory search index (BM25 candidates, term-coverage scores).
"""
