"""TLM (task-driven language modeling): retrieval of task-relevant documents from a
general corpus (``retrieval``), the joint MLM + task model (``model``), its input
pipelines (``data``) and the two training stages with their controls (``trainer``)."""

from electra_tf.tlm.retrieval import (
    Bm25sRetriever,
    RetrievedSet,
    Retriever,
    WhooshRetriever,
    build_query,
    make_analyzer,
    rake_keywords,
    random_documents,
    read_retrieved,
    retrieve,
    write_retrieved,
)

__all__ = ["Bm25sRetriever", "Retriever", "RetrievedSet", "WhooshRetriever", "build_query",
           "make_analyzer", "random_documents", "rake_keywords", "read_retrieved", "retrieve",
           "write_retrieved"]
