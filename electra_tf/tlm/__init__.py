"""TLM (task-driven language modeling): retrieval of task-relevant documents.

Stage 1 (joint MLM + task training) and stage 2 (task finetuning) are not built yet.
"""

from electra_tf.tlm.retrieval import (
    Bm25sRetriever,
    RetrievedSet,
    Retriever,
    WhooshRetriever,
    build_query,
    make_analyzer,
    rake_keywords,
    read_retrieved,
    retrieve,
    write_retrieved,
)

__all__ = ["Bm25sRetriever", "Retriever", "RetrievedSet", "WhooshRetriever", "build_query",
           "make_analyzer", "rake_keywords", "read_retrieved", "retrieve", "write_retrieved"]
