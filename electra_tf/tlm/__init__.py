"""TLM (task-driven language modeling): retrieval of task-relevant documents from the
BM25 index that ``data_prep.build_tlm_index`` builds (``retrieval``), the joint MLM + task
model (``model``), its input pipelines (``data``) and the two training stages with their
controls (``trainer``)."""
