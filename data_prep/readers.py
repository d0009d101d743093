"""Corpus readers: stream documents as lists of sentences, never a whole corpus in memory.

Every reader yields :class:`Document` (a title and its sentences) and counts what it
dropped in a :class:`ReadStats`. Formats:

* ``wikipedia``: a MediaWiki XML dump (``*.xml`` or ``*.xml.bz2``), streamed with
  iterparse; redirects and non-article namespaces skipped; wikitext turned into prose
  with mwparserfromhell (templates, tables, references, files, categories and headings
  dropped; link text kept).
* ``wikiextractor``: WikiExtractor output, ``<doc ...>`` blocks or JSON lines, a file or a
  folder of them.
* ``books``: a BooksCorpus-style folder of ``.txt`` files, one document per file.
* ``text``: plain text, blank lines between documents (the original ELECTRA format),
  a file or a folder of files.
* ``tfds``: a TensorFlow Datasets text dataset by name (e.g. ``wikipedia/20230601.en``).

Sentences come from blingfire's rule-based splitter (no model download). Text is
NFC-normalized; empty or markup-only documents are dropped and counted. Corpus paths go
through :mod:`electra_tf.files`, so a corpus may live in a bucket (``gs://...``). The
pretraining builder reads through :func:`read_corpora_lines`: each document as one
block of UTF-8 lines, plain text handed to worker processes as blocks of bytes.

Bad input stops the read with a :class:`CorpusError` naming the file and the line (or
page) and what was expected: bytes that are not UTF-8, a NUL character (a binary or
UTF-16 file), a line longer than MAX_LINE_CHARS, an empty file named as a corpus, XML
that is not a MediaWiki dump, a ``.bz2`` stream cut off before its end.
"""

from __future__ import annotations

import bz2
import contextlib
import ctypes
import dataclasses
import html
import json
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator

import tensorflow as tf

from electra_tf import files

FORMATS = ("wikipedia", "wikiextractor", "books", "text", "tfds")
MIN_DOCUMENT_CHARS = 20  # shorter than this after cleaning = markup-only / empty


class CorpusError(ValueError):
    """A corpus cannot be read: the message names the file (and line) and the problem."""


@dataclasses.dataclass
class Document:
    title: str
    sentences: list[str]


@dataclasses.dataclass
class ReadStats:
    documents: int = 0
    sentences: int = 0
    dropped_empty: int = 0
    skipped_redirects: int = 0
    skipped_namespaces: int = 0

    def merge(self, other: ReadStats) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


# ----------------------------------------------------------------------- text


def normalize(text: str) -> str:
    """NFC, HTML entities decoded, runs of spaces collapsed, line structure kept."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    text = text.replace("\u00a0", " ").replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))


_SPLITTER: list = []  # [blingfire's TextToSentences with argument types set, out buffer]


def split_sentences(paragraph: str) -> list[str]:
    """Rule-based sentence splitting of one paragraph (blingfire).

    Calls blingfire's C function directly, with one reusable output buffer: its Python
    wrapper allocates and zero-fills a fresh buffer per call, which cost more than the
    split. Its own handle on the library: declaring argument types on the wrapper's
    function would change how the wrapper's calls are converted.
    """
    paragraph = " ".join(paragraph.split())
    if not paragraph:
        return []
    data = paragraph.encode("utf-8")
    needed = 2 * len(data) + 16
    if not _SPLITTER or len(_SPLITTER[1]) < needed:
        _SPLITTER[:] = [_text_to_sentences(), ctypes.create_string_buffer(max(needed, 1 << 16))]
    function, buffer = _SPLITTER
    length = function(data, len(data), buffer, len(buffer))
    if length < 0 or length > len(buffer):
        import blingfire

        text = blingfire.text_to_sentences(paragraph)  # the wrapper's own fallback
    else:
        # string_at copies `length` bytes; buffer.raw would copy the whole buffer.
        text = ctypes.string_at(buffer, length).split(b"\x00", 1)[0].decode("utf-8")
    return [s for s in map(str.strip, text.split("\n")) if s]


def _text_to_sentences():
    import blingfire

    function = ctypes.CDLL(blingfire.blingfire._name).TextToSentences
    function.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


@dataclasses.dataclass
class RawDocument:
    """A document as read, before cleaning and sentence splitting (the costly part,
    which :func:`finish` does, possibly in worker processes)."""

    title: str
    text: str
    wikitext: bool = False
    join_lines: bool = False


def _to_document(title: str, text: str, join_lines: bool = False) -> Document | None:
    """Normalize and split into sentences; None when nothing is left.

    Paragraphs are separated by blank lines; with `join_lines` the lines inside a
    paragraph are one running text (books wrap lines), otherwise each line is its own
    paragraph.
    """
    text = normalize(text)
    if join_lines:
        paragraphs = [" ".join(block.split("\n")) for block in re.split(r"\n\s*\n", text)]
    else:
        paragraphs = text.split("\n")
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    if sum(len(s) for s in sentences) < MIN_DOCUMENT_CHARS:
        return None
    return Document(title, sentences)


def finish(raw: RawDocument) -> Document | None:
    """Clean (wikitext) and split a raw document; None if it is empty or only markup."""
    if raw.wikitext:
        try:
            text = clean_wikitext(raw.text)
        except RecursionError:  # pathologically nested markup: regex clean-up only
            text = _scrub(raw.text)
    else:
        text = raw.text
    return _to_document(raw.title, text, raw.join_lines)


def finish_lines(raw: RawDocument) -> tuple[int, bytes] | None:
    """:func:`finish` as the pretraining builder stores a document: (sentence count, its
    sentences one per line, UTF-8, then a blank line). One bytes object crosses between
    processes several times faster than a list of strings."""
    document = finish(raw)
    if document is None:
        return None
    return len(document.sentences), ("\n".join(document.sentences) + "\n\n").encode("utf-8")


def finished(raws: Iterable[RawDocument], stats: ReadStats, pool=None) -> Iterator[Document]:
    """Finish raw documents in order (in `pool`'s workers if given), counting them."""
    results = pool.imap(finish, raws, chunksize=16) if pool is not None else map(finish, raws)
    for document in results:
        if document is None:
            stats.dropped_empty += 1
            continue
        stats.documents += 1
        stats.sentences += len(document.sentences)
        yield document


# ----------------------------------------------------------------------- wikipedia

_DROP_LINK_PREFIXES = ("file:", "image:", "category:", "media:")
_DROP_TAGS = {"ref", "references", "table", "gallery", "math", "timeline", "imagemap",
              "score", "syntaxhighlight", "source", "pre", "nowiki", "templatedata"}
_INTERLANGUAGE = re.compile(r"^:?[a-z]{2,3}(-[a-z]+)?:")


def clean_wikitext(wikitext: str) -> str:
    """Wikitext to plain prose: drop templates, tables, refs, files/categories, headings;
    keep the text of links. One paragraph per line."""
    import mwparserfromhell

    text = _scrub("".join(_render(mwparserfromhell.parse(wikitext))))
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"^[*#:;]+\s*", "", line.strip())  # list markers
        line = re.sub(r"'{2,}", "", line)  # bold / italic quotes
        line = re.sub(r"\(\s*[,;]?\s*\)", "", line)  # "( )" left by removed templates
        line = " ".join(line.split())
        if line and not line.startswith(("{|", "|", "!")):
            lines.append(line)
    return "\n".join(lines)


_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_LINK = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]")


def _link_text(match: re.Match) -> str:
    target, label = match.group(1), match.group(2)
    if target.strip().lower().startswith(_DROP_LINK_PREFIXES):
        return ""
    return (label.rsplit("|", 1)[-1] if label else target).strip()


def _scrub(text: str) -> str:
    """Markup mwparserfromhell left as text (unbalanced pages): refs, tags, templates,
    links, innermost first."""
    text = _REF.sub("", text)
    for pattern, replacement in ((_TEMPLATE, ""), (_LINK, _link_text)):
        previous = None
        while previous != text:
            previous, text = text, pattern.sub(replacement, text)
    text = _HTML_TAG.sub("", text)
    return text.replace("{{", "").replace("}}", "").replace("[[", "").replace("]]", "")


def _render(code) -> Iterator[str]:
    """Text of a parsed wikicode, one pass over its nodes (no in-place removal)."""
    from mwparserfromhell.nodes import ExternalLink, HTMLEntity, Tag, Text, Wikilink

    for node in code.nodes:
        if isinstance(node, Text):
            yield node.value
        elif isinstance(node, Wikilink):
            title = str(node.title).strip()
            if not (title.lower().startswith(_DROP_LINK_PREFIXES)
                    or _INTERLANGUAGE.match(title.lower())):
                yield from _render(node.text) if node.text is not None else [title]
        elif isinstance(node, ExternalLink):
            if node.title is not None:
                yield from _render(node.title)
        elif isinstance(node, HTMLEntity):
            yield node.normalize()
        elif isinstance(node, Tag):
            tag = str(node.tag).lower().strip()
            if node.wiki_markup in ("{|", "|", "!", "|-", "|+") or tag in _DROP_TAGS:
                continue
            if tag in ("br", "hr"):
                yield "\n"
            elif node.contents is not None:
                yield from _render(node.contents)
        # Templates, comments, headings, arguments, parser functions: dropped.


# What reading a file can raise besides decoding errors: OSError locally, TensorFlow's
# errors (permission denied, ...) from a remote file system.
_READ_ERRORS = (OSError, EOFError, tf.errors.OpError)


@contextlib.contextmanager
def _open_dump(path: str) -> Iterator:
    """`path` as a binary stream, bz2-decompressed when it ends in ``.bz2``."""
    with files.open_file(path, "rb") as handle:
        if path.endswith(".bz2"):
            with bz2.open(handle, "rb") as decompressed:
                yield decompressed
        else:
            yield handle


def _reason(error: BaseException) -> str:
    if isinstance(error, tf.errors.OpError):
        return error.message
    return getattr(error, "strerror", None) or str(error)


def read_wikipedia_dump(path: str, stats: ReadStats | None = None,
                        namespaces: tuple[int, ...] = (0,)) -> Iterator[Document]:
    """Articles of a MediaWiki XML dump, streamed."""
    stats = stats if stats is not None else ReadStats()
    return finished(raw_wikipedia_dump(path, stats, namespaces), stats)


_DUMP = "a MediaWiki XML dump (.xml or .xml.bz2)"


def raw_wikipedia_dump(path: str, stats: ReadStats,
                       namespaces: tuple[int, ...] = (0,)) -> Iterator[RawDocument]:
    if not files.exists(path):
        raise CorpusError(f"{path}: no such file")
    if files.isdir(path):
        raise CorpusError(f"{path}: a folder; expected {_DUMP}")
    if files.size_and_mtime(path)[0] == 0:
        raise CorpusError(f"{path}: empty file; expected {_DUMP}")
    pages, title = 0, ""
    try:
        with _open_dump(path) as f:
            context = ET.iterparse(f, events=("start", "end"))
            root = None
            for event, element in context:
                if root is None:
                    root = element
                    if element.tag.rsplit("}", 1)[-1] != "mediawiki":
                        raise CorpusError(f"{path}: the root element is <{element.tag}>; "
                                          f"expected {_DUMP}, whose root is <mediawiki>")
                if event != "end" or not element.tag.endswith("}page") and element.tag != "page":
                    continue
                pages += 1
                page = {child.tag.rsplit("}", 1)[-1]: child for child in element}
                title = (page["title"].text or "") if "title" in page else ""
                try:
                    namespace = int(page["ns"].text) if "ns" in page else 0
                except (TypeError, ValueError):
                    raise CorpusError(f"{path}: page {pages} ({title!r}): <ns> is "
                                      f"{page['ns'].text!r}; expected a number") from None
                if "redirect" in page:
                    stats.skipped_redirects += 1
                elif namespace not in namespaces:
                    stats.skipped_namespaces += 1
                else:
                    text_node = next((e for e in element.iter()
                                      if e.tag.rsplit("}", 1)[-1] == "text"), None)
                    wikitext = text_node.text or "" if text_node is not None else ""
                    if wikitext.lstrip().lower().startswith("#redirect"):
                        stats.skipped_redirects += 1
                    else:
                        yield RawDocument(title, wikitext, wikitext=True)
                element.clear()
                root.clear()  # keep memory flat: drop finished pages
    except EOFError:
        # bz2's error when the stream stops before its end marker: a cut-off download
        where = f"after page {pages} ({title!r})" if pages else "before the first page"
        raise CorpusError(f"{path}: the compressed stream ends early, {where}; expected a "
                          f"complete .bz2 file (a truncated download?)") from None
    except _READ_ERRORS as e:
        raise CorpusError(f"{path}: cannot read ({_reason(e)}); expected {_DUMP}") from None
    except ET.ParseError as e:
        line, column = e.position
        reason = re.sub(r": line \d+, column \d+$", "", e.msg)  # the position comes first
        raise CorpusError(f"{path}: line {line}, column {column}: not valid XML ({reason}); "
                          f"expected {_DUMP}") from None


# ----------------------------------------------------------------------- others


def all_files(path: str) -> list[str]:
    """Every file under folder `path`, recursively, hidden ones included, sorted."""
    found = []
    for name in files.listdir(path):
        child = files.join(path, name)
        found += all_files(child) if files.isdir(child) else [child]
    return sorted(found)


def _files(path: str, suffixes: tuple[str, ...] | None = None,
           expected: str = "a text file") -> list[str]:
    """The files of corpus `path`: the files of a folder (with one of `suffixes`), or
    `path` itself, which must not be empty (a folder may hold empty files: dropped)."""
    if files.isdir(path):
        found = [file for file in all_files(path)
                 if not os.path.basename(file).startswith(".")
                 and (suffixes is None or file.endswith(suffixes))]
        if not found:
            want = f" ({', '.join(suffixes)})" if suffixes else ""
            raise CorpusError(f"{path}: folder holds no corpus files{want}")
        return found
    if not files.exists(path):
        raise CorpusError(f"{path}: no such file or folder")
    if files.size_and_mtime(path)[0] == 0:
        raise CorpusError(f"{path}: empty file; expected {expected}")
    return [path]


# A line longer than this is read as an error rather than held in memory whole: text
# without line breaks (a binary or a one-line dump) would otherwise take all of it.
MAX_LINE_CHARS = 32 << 20


def _read_text_file(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, line endings made ``\\n`` (as Python's
    universal newlines do); bad bytes, NUL characters and lines longer than
    MAX_LINE_CHARS are errors naming the file and line."""
    try:
        with files.open_file(path, encoding="utf-8") as f:
            line_no = 0
            while line := f.readline(MAX_LINE_CHARS + 1):
                line_no += 1
                if len(line) > MAX_LINE_CHARS:
                    raise CorpusError(f"{path}: line {line_no}: longer than "
                                      f"{MAX_LINE_CHARS:,} characters; expected text with "
                                      f"line breaks")
                if "\x00" in line:  # valid UTF-8, but no text has it: binary or UTF-16
                    raise CorpusError(f"{path}: line {line_no}: a NUL character at column "
                                      f"{line.index(chr(0)) + 1}; expected UTF-8 text, not "
                                      f"binary or UTF-16")
                if line.endswith("\r\n"):
                    line = line[:-2] + "\n"
                elif line.endswith("\r"):
                    line = line[:-1] + "\n"
                yield line_no, line
    except UnicodeDecodeError:
        raise CorpusError(files.not_utf8(path)) from None
    except _READ_ERRORS as e:
        raise CorpusError(f"{path}: cannot read ({_reason(e)})") from None


_DOC_TITLE = re.compile(r'\btitle="([^"]*)"')


def _without_title(title: str, text: str) -> str:
    """WikiExtractor repeats the title as the text's first line: drop it."""
    first, _, rest = text.lstrip("\n").partition("\n")
    return rest if title and first.strip() == title.strip() else text


def read_wikiextractor(path: str, stats: ReadStats | None = None) -> Iterator[Document]:
    """WikiExtractor output: ``<doc ...>`` ... ``</doc>`` blocks or JSON lines."""
    stats = stats if stats is not None else ReadStats()
    return finished(raw_wikiextractor(path, stats), stats)


_WIKIEXTRACTOR = "WikiExtractor output (<doc> blocks or JSON lines)"


def raw_wikiextractor(path: str, stats: ReadStats) -> Iterator[RawDocument]:
    for file in _files(path, expected=_WIKIEXTRACTOR):
        title, lines, opened = "", [], 0  # opened: the line of the open <doc>, or 0
        for line_no, line in _read_text_file(file):
            stripped = line.strip()
            if not opened and stripped.startswith("{"):
                title, text = _json_record(stripped, file, line_no)
                yield RawDocument(title, _without_title(title, text))
            elif stripped.startswith("<doc"):
                if opened:
                    raise CorpusError(f"{file}: line {line_no}: <doc> inside the <doc> of "
                                      f"line {opened}; expected </doc> first")
                match = _DOC_TITLE.search(stripped)
                title, lines, opened = match.group(1) if match else "", [], line_no
            elif stripped == "</doc>":
                if not opened:
                    raise CorpusError(f"{file}: line {line_no}: </doc> without <doc>; "
                                      f"expected {_WIKIEXTRACTOR}")
                yield RawDocument(html.unescape(title), _without_title(title, "".join(lines)))
                opened = 0
            elif opened:
                lines.append(line)
            elif stripped:
                raise CorpusError(f"{file}: line {line_no}: text outside <doc> blocks; "
                                  f"expected {_WIKIEXTRACTOR}")
        if opened:
            raise CorpusError(f"{file}: ends inside a <doc> block (opened at line {opened}); "
                              f"expected </doc> (a truncated file?)")


def _json_record(line: str, file: str, line_no: int) -> tuple[str, str]:
    """(title, text) of one JSON line of WikiExtractor's ``--json`` output."""
    expected = "expected a WikiExtractor JSON record with a 'text' string"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{file}: line {line_no}: not valid JSON ({e.msg}: column "
                          f"{e.colno}); {expected}") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        got = ("no 'text'" if not isinstance(record, dict) or "text" not in record
               else f"'text' of type {type(record['text']).__name__}")
        raise CorpusError(f"{file}: line {line_no}: {got}; {expected}")
    title = record.get("title")
    return title if isinstance(title, str) else "", record["text"]


def read_books(path: str, stats: ReadStats | None = None) -> Iterator[Document]:
    """A folder of ``.txt`` books, one document per file (lines within a paragraph are
    joined, as books wrap their lines)."""
    stats = stats if stats is not None else ReadStats()
    return finished(raw_books(path, stats), stats)


def raw_books(path: str, stats: ReadStats) -> Iterator[RawDocument]:
    if not files.isdir(path):
        raise CorpusError(f"{path}: not a folder; expected a folder of .txt books")
    for file in _files(path, (".txt",)):
        text = "".join(line for _, line in _read_text_file(file))
        yield RawDocument(os.path.basename(file), text, join_lines=True)


def read_plain_text(path: str, stats: ReadStats | None = None) -> Iterator[Document]:
    """Plain text, one paragraph or sentence per line, blank lines between documents."""
    stats = stats if stats is not None else ReadStats()
    return finished(raw_plain_text(path, stats), stats)


def raw_plain_text(path: str, stats: ReadStats) -> Iterator[RawDocument]:
    for file in _files(path, expected=_PLAIN_TEXT):
        for text in _documents(line for _, line in _read_text_file(file)):
            yield RawDocument(file, text)


_PLAIN_TEXT = "text, blank lines between documents"


def _documents(lines: Iterable[str]) -> Iterator[str]:
    """The documents of plain-text `lines` (each with its line end): blank lines (only
    whitespace) separate them."""
    document: list[str] = []
    for line in lines:
        if line.strip():
            document.append(line)
        elif document:
            yield "".join(document)
            document = []
    if document:
        yield "".join(document)


TEXT_BLOCK = 1 << 20  # bytes of plain text per task: whole documents, about this much


def plain_text_blocks(path: str) -> Iterator[tuple[str, bytes]]:
    """Plain-text corpus `path` (a file or a folder) as (file, bytes) blocks of whole
    documents, for :func:`finish_text_block`: a block ends after a blank line ("\n\n" or
    "\n\r\n"), so it holds the very documents the line reader finds there. Reading in
    blocks and splitting lines in workers spares the reading process a Python step per
    line."""
    for file in _files(path, expected=_PLAIN_TEXT):
        try:
            with files.open_file(file, "rb") as f:
                parts: list[bytes] = []  # read since the last block
                size, tail, checked = 0, b"", False
                while block := f.read(TEXT_BLOCK):
                    end = _after_blank_line(tail + block) - len(tail)
                    tail = block[-2:]  # a blank line may straddle two reads
                    if end <= 0:
                        parts.append(block)
                        size += len(block)
                        if size > 4 * MAX_LINE_CHARS and not checked:
                            # No blank line for long: either one large document (held
                            # whole, as the line reader would) or a line over the limit.
                            _check_lines(file)
                            checked = True
                        continue
                    parts.append(block[:end])
                    yield file, b"".join(parts)
                    parts, size = [block[end:]], len(block) - end
                if size:
                    yield file, b"".join(parts)
        except _READ_ERRORS as e:
            raise CorpusError(f"{file}: cannot read ({_reason(e)})") from None


def _after_blank_line(data: bytes) -> int:
    """Where the last "\n\n" or "\n\r\n" of `data` ends (0 if it has none): a line
    break, then an empty line."""
    return max((i + len(p) for p in (b"\n\n", b"\n\r\n") if (i := data.rfind(p)) >= 0),
               default=0)


def _check_lines(file: str) -> None:
    """Read `file` as the line reader does: its first bad line raises an error naming
    it (the blocks' check finds that a block is bad, not where)."""
    for _ in _read_text_file(file):
        pass


def finish_text_block(block: tuple[str, bytes]) -> list[tuple[int, bytes] | None]:
    """:func:`finish_lines` of each document of a :func:`plain_text_blocks` block. Bad
    input (not UTF-8, a NUL, a line over MAX_LINE_CHARS) raises the line reader's error,
    naming the line."""
    file, data = block
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if (text is None or "\x00" in text or len(text) > MAX_LINE_CHARS
            and max(map(len, re.split("\r\n|\r|\n", text))) + 2 > MAX_LINE_CHARS):
        _check_lines(file)
        if text is None or "\x00" in text:
            raise CorpusError(f"{file}: changed while being read")
    # The line reader's line ends: "\r\n" and "\r" become "\n".
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    last = lines.pop()  # after the last line end: "" or a last line without one
    lines = [line + "\n" for line in lines] + ([last] if last else [])
    return [finish_lines(RawDocument(file, document)) for document in _documents(lines)]


def read_tfds(name: str, stats: ReadStats | None = None, split: str = "train",
              data_dir: str | None = None, text_key: str = "text",
              download: bool = False) -> Iterator[Document]:
    """A TensorFlow Datasets text dataset (data dir: `data_dir` or TFDS_DATA_DIR).

    Not prepared there: an error, or with ``download=True`` TFDS downloads and prepares
    it (needs the internet; Wikipedia is tens of GB).
    """
    stats = stats if stats is not None else ReadStats()
    return finished(raw_tfds(name, stats, split, data_dir, text_key, download), stats)


def raw_tfds(name: str, stats: ReadStats, split: str = "train", data_dir: str | None = None,
             text_key: str = "text", download: bool = False) -> Iterator[RawDocument]:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises several types for unknown names/configs
        raise CorpusError(f"tfds dataset {name!r}: {e}") from None
    if not builder.is_prepared():
        if not download:
            raise CorpusError(
                f"tfds dataset {name!r} is not prepared in {builder.data_dir}; prepare it "
                f"(`tfds build {name}`, on a machine with internet access) and point "
                f"TFDS_DATA_DIR at its data dir")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise CorpusError(
                f"tfds dataset {name!r} could not be downloaded and prepared in "
                f"{builder.data_dir} ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            ) from None
    for example in builder.as_dataset(split=split).as_numpy_iterator():
        title = example.get("title", b"")
        yield RawDocument(title.decode("utf-8") if isinstance(title, bytes) else str(title),
                          example[text_key].decode("utf-8"))


RAW_READERS = {
    "wikipedia": raw_wikipedia_dump,
    "wikiextractor": raw_wikiextractor,
    "books": raw_books,
    "text": raw_plain_text,
    "tfds": raw_tfds,
}


def parse_spec(spec: str) -> tuple[str, str]:
    """``FORMAT:PATH`` -> (format, path), or a clear error."""
    fmt, sep, path = spec.partition(":")
    if not sep or not path:
        raise CorpusError(f"corpus {spec!r}: expected FORMAT:PATH with FORMAT one of "
                          f"{', '.join(FORMATS)}")
    if fmt not in RAW_READERS:
        raise CorpusError(f"corpus {spec!r}: unknown format {fmt!r}; allowed: "
                          f"{', '.join(FORMATS)}")
    return fmt, path


def read_corpora(specs: Iterable[str], stats: ReadStats | None = None,
                 pool=None) -> Iterator[Document]:
    """Documents of several ``FORMAT:PATH`` specs, in order. With a multiprocessing
    `pool`, cleaning and sentence splitting run in its workers (order kept)."""
    stats = stats if stats is not None else ReadStats()
    parsed = [parse_spec(spec) for spec in specs]  # a typo in the last one fails at once
    raws = (raw for fmt, path in parsed for raw in RAW_READERS[fmt](path, stats))
    return finished(raws, stats, pool)


def read_corpora_lines(specs: Iterable[str], stats: ReadStats | None = None,
                       pool=None) -> Iterator[tuple[int, bytes]]:
    """:func:`read_corpora`'s documents as :func:`finish_lines` gives them. Plain text
    goes to the workers in blocks of bytes (:func:`plain_text_blocks`), other formats'
    documents 16 at a time."""
    stats = stats if stats is not None else ReadStats()
    parsed = [parse_spec(spec) for spec in specs]
    tasks = (task for fmt, path in parsed for task in (
        plain_text_blocks(path) if fmt == "text"
        else _batches(RAW_READERS[fmt](path, stats), 16)))
    results = pool.imap(finish_task, tasks) if pool is not None else map(finish_task, tasks)
    while True:
        try:
            result = next(results)
        except StopIteration:
            return
        except CorpusError as e:  # maybe a worker's: raised again as the reader's own
            raise CorpusError(str(e)) from None
        for document in result:
            if document is None:
                stats.dropped_empty += 1
                continue
            stats.documents += 1
            stats.sentences += document[0]
            yield document


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def finish_task(task: tuple[str, bytes] | list[RawDocument]) -> list:
    """A task of :func:`read_corpora_lines`: a block of plain text or a list of raw
    documents, finished."""
    if isinstance(task, tuple):
        return finish_text_block(task)
    return [finish_lines(raw) for raw in task]
