"""TLM (task-driven language modeling): the BM25 index over a general corpus (``index``),
retrieval of task-relevant documents (``retrieval``), the joint MLM + task model
(``model``), its input pipelines (``data``) and the two training stages with their
controls (``trainer``)."""
