"""Parse an ONNX file without reading its weight bytes.

``onnx.load`` materializes every initializer: on a 550 MB model with embedded weights it
takes about a second and more than twice the file size in memory, only for archlint to
throw the bytes away. :func:`read_model` instead reads the file in small chunks, walks the protobuf
wire format just deep enough to find large tensors, and hands protobuf a copy of the
file with their data fields cut out (dims, type and name stay). Skipped bytes are never read from disk.

Field numbers (``onnx/onnx.proto``): ``ModelProto.graph`` = 7; ``GraphProto.node`` = 1,
``GraphProto.initializer`` = 5; ``NodeProto.attribute`` = 5; ``AttributeProto.t`` = 5,
``AttributeProto.tensors`` = 10, ``AttributeProto.g`` = 6 and ``AttributeProto.graphs`` = 11
(subgraphs: If branches, Loop bodies, walked like the main graph); ``TensorProto.dims`` = 1
and its data fields
``float_data`` 4, ``int32_data`` 5, ``string_data`` 6, ``int64_data`` 7, ``raw_data`` 9,
``double_data`` 10, ``uint64_data`` 11.

Everything else is copied byte for byte, so protobuf sees (and validates) the same
message minus the cut fields. Only messages longer than ``min_cut`` bytes are walked,
which keeps the cost at a few microseconds per initializer or node.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import onnx

from ..errors import ModelLoadError

__all__ = ["read_model", "WireModel", "sniff"]

_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_TENSORS = 5, 10
_ATTR_G, _ATTR_GRAPHS = 6, 11
_TENSOR_DIMS = 1
_TENSOR_DATA = frozenset({4, 5, 6, 7, 9, 10, 11})

#: Leading bytes of files that get handed to archlint by mistake, and what they are.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt/.pth checkpoint or .pt2 is one)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x1f\x8b", "a gzip-compressed file; decompress it first"),
    (b"\x7fELF", "an ELF executable"),
    (b"%PDF", "a PDF document"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (e.g. a Keras .h5 model)"),
    (b"\x80\x02", "a Python pickle (e.g. a legacy PyTorch .pt file); archlint never loads pickles"),
    (b"\x80\x03", "a Python pickle (e.g. a legacy PyTorch .pt file); archlint never loads pickles"),
    (b"\x80\x04", "a Python pickle (e.g. a legacy PyTorch .pt file); archlint never loads pickles"),
    (b"\x80\x05", "a Python pickle (e.g. a legacy PyTorch .pt file); archlint never loads pickles"),
)


class _WireError(Exception):
    def __init__(self, problem: str, pos: int) -> None:
        super().__init__(f"{problem} at byte {pos}")


@dataclass
class WireModel:
    """A parsed model whose large tensors have dims but no data."""

    model: onnx.ModelProto
    #: Bytes of tensor data left unread (cut from large initializers and Constant nodes).
    skipped_bytes: int
    #: Number of tensors whose data was cut.
    cut_tensors: int


def sniff(head: bytes) -> str | None:
    """What a file starting with ``head`` is, if it is a well-known non-ONNX format.

    ONNX files are protobuf: their first byte is a field tag. None of the magic numbers
    below is a tag of a ``ModelProto`` field, so a match is never a false alarm.
    """
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    text = head[3:] if head.startswith(b"\xef\xbb\xbf") else head  # UTF-8 byte order mark
    # A model starts with a field tag, in practice 0x08 (ir_version): never printable text.
    if text and all(c >= 0x20 or c in b"\t\r\n" for c in text):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(text) - 3:  # not just a character cut at the end of ``head``
                return None
        return "a text file (ONNX models are binary protobuf files)"
    return None


def read_model(path: str | os.PathLike, source: str, keep_elements: int = 1024,
               min_cut: int = 65536) -> WireModel:
    """Parse the ONNX file ``path``, cutting the data of tensors with more than ``keep_elements``.

    Tensors of at most ``keep_elements`` elements keep their values (shape inference needs
    Reshape targets and Slice bounds). Raises :class:`ModelLoadError` with a one-line
    message if the file is not a well-formed protobuf message.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise ModelLoadError(source, "empty file (0 bytes), not an ONNX model")
            head = fh.read(16)
            what = sniff(head)
            if what is not None:
                raise ModelLoadError(source, f"not an ONNX model: this is {what}")
            view = _FileView(fh.fileno(), size)
            walker = _Walker(view, keep_elements, min_cut)
            try:
                pieces = walker.model()
            except _WireError as exc:
                raise ModelLoadError(source, f"not a valid ONNX model (protobuf parse failed: {exc})") from None
            data = b"".join(p if isinstance(p, bytes) else view.read(*p) for p in pieces)
            del pieces
    except OSError as exc:
        raise ModelLoadError(source, f"cannot read the file: {exc.strerror or exc}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeError from C++
        first = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelLoadError(source, f"not a valid ONNX model (protobuf parse failed: {first})") from None
    return WireModel(model, walker.skipped, walker.cut)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _FileView:
    """Bytes of an open file by index, read in small chunks with ``pread``.

    Not ``mmap``: every page a mapping touches counts in the resident set, and the kernel
    maps whole read-around windows; walking 14 initializer headers of a 130 MB file cost
    28 MB of RSS that way. Slices are returned as ``(start, stop)`` and read at the end.
    """

    CHUNK = 1 << 14

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.base, self.chunk = 0, b""

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if isinstance(key, slice):
            return (key.start, key.stop)
        offset = key - self.base
        if 0 <= offset < len(self.chunk):
            return self.chunk[offset]
        if not 0 <= key < self.size:
            raise IndexError(key)
        self.base, self.chunk = key, os.pread(self.fd, self.CHUNK, key)
        if not self.chunk:
            raise OSError(f"file shrank while reading (byte {key})")
        return self.chunk[0]

    def read(self, start: int, stop: int) -> bytes:
        parts = []
        while start < stop:
            part = os.pread(self.fd, min(stop - start, 1 << 30), start)
            if not part:
                raise OSError(f"file shrank while reading (byte {start})")
            parts.append(part)
            start += len(part)
        return b"".join(parts)


class _Walker:
    """Rewrites a ModelProto's bytes as a list of pieces (memoryview slices and new headers)."""

    def __init__(self, view: _FileView, keep_elements: int, min_cut: int) -> None:
        self.view = view
        self.keep = keep_elements
        self.min_cut = min_cut
        self.skipped = 0
        self.cut = 0

    # -- wire primitives ---------------------------------------------------------------

    def _varint(self, pos: int, end: int) -> tuple[int, int]:
        view = self.view
        chunk, offset = view.chunk, pos - view.base
        if 0 <= offset < len(chunk) - 1 and pos + 1 < end:  # its first two bytes are in the chunk read last
            first = chunk[offset]
            if first < 0x80:  # one byte: tags, short lengths
                return first, pos + 1
            if chunk[offset + 1] < 0x80:  # two bytes: lengths up to 16 KB
                return (first & 0x7F) | (chunk[offset + 1] << 7), pos + 2
        result = shift = 0
        start = pos
        while True:
            if pos >= end:
                raise _WireError("truncated varint", start)
            byte = view[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise _WireError("malformed varint", start)

    def _fields(self, start: int, end: int):
        """Yield ``(field, wire_type, field_start, value_start, value_end)`` of a message."""
        pos = start
        while pos < end:
            tag, value_start = self._varint(pos, end)
            field, wire = tag >> 3, tag & 7
            if field == 0:
                raise _WireError("invalid field number 0", pos)
            if wire == 0:
                _, value_end = self._varint(value_start, end)
            elif wire == 1:
                value_end = value_start + 8
            elif wire == 2:
                length, value_start = self._varint(value_start, end)
                value_end = value_start + length
            elif wire == 5:
                value_end = value_start + 4
            elif wire == 3:
                value_end = self._skip_group(field, value_start, end)
            else:
                raise _WireError(f"invalid wire type {wire}", pos)
            if value_end > end:
                raise _WireError("truncated message", pos)
            yield field, wire, pos, value_start, value_end
            pos = value_end

    def _skip_group(self, field: int, pos: int, end: int) -> int:
        """End of a (deprecated) group started by ``field``; nested groups are counted, not recursed."""
        open_groups = [field]
        while open_groups:
            tag, pos = self._varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                _, pos = self._varint(pos, end)
            elif wire == 1:
                pos += 8
            elif wire == 2:
                length, pos = self._varint(pos, end)
                pos += length
            elif wire == 5:
                pos += 4
            elif wire == 3:
                open_groups.append(number)
            elif wire == 4:
                if open_groups.pop() != number:
                    raise _WireError("mismatched end of group", pos)
                continue
            else:
                raise _WireError(f"invalid wire type {wire}", pos)
            if pos > end:
                raise _WireError("truncated group", pos)
        return pos

    # -- rewriting ---------------------------------------------------------------------

    def _rewrite(self, start: int, end: int, handlers: dict[int, object]) -> tuple[list, int] | None:
        """Pieces of the message ``[start, end)`` with some fields rewritten, or None if unchanged.

        ``handlers`` maps a length-delimited field number to a method returning the new
        content of one occurrence (pieces, length) or None to keep it.
        """
        pieces: list = []
        total = 0
        copied = start
        changed = False
        for field, wire, fstart, vstart, vend in self._fields(start, end):
            handler = handlers.get(field)
            if handler is None or wire != 2 or vend - vstart <= self.min_cut:
                continue
            new = handler(vstart, vend)
            if new is None:
                continue
            changed = True
            if fstart > copied:
                pieces.append(self.view[copied:fstart])
                total += fstart - copied
            content, length = new
            header = _encode_varint((field << 3) | 2) + _encode_varint(length)
            pieces.append(header)
            pieces.extend(content)
            total += len(header) + length
            copied = vend
        if not changed:
            return None
        if end > copied:
            pieces.append(self.view[copied:end])
            total += end - copied
        return pieces, total

    def model(self) -> list:
        end = len(self.view)
        new = self._rewrite(0, end, {_MODEL_GRAPH: self._graph})
        return [(0, end)] if new is None else new[0]

    def _graph(self, start: int, end: int):
        return self._rewrite(start, end, {_GRAPH_NODE: self._node, _GRAPH_INITIALIZER: self._tensor})

    def _node(self, start: int, end: int):
        return self._rewrite(start, end, {_NODE_ATTRIBUTE: self._attribute})

    def _attribute(self, start: int, end: int):
        # subgraphs (If branches, Loop bodies) hold weights too: a whole model may sit in a branch
        return self._rewrite(start, end, {_ATTR_T: self._tensor, _ATTR_TENSORS: self._tensor,
                                          _ATTR_G: self._graph, _ATTR_GRAPHS: self._graph})

    def _tensor(self, start: int, end: int):
        dims: list[int] = []
        data: list[tuple[int, int]] = []
        data_bytes = 0
        for field, wire, fstart, vstart, vend in self._fields(start, end):
            if field == _TENSOR_DIMS:
                if wire == 0:
                    dims.append(self._varint(vstart, vend)[0])
                elif wire == 2:
                    pos = vstart
                    while pos < vend:
                        value, pos = self._varint(pos, vend)
                        dims.append(value)
            elif field in _TENSOR_DATA:
                data.append((fstart, vend))
                data_bytes += vend - fstart
        dims = [d - (1 << 64) if d >= 1 << 63 else d for d in dims]
        numel = math.prod(dims)
        if not data or (numel <= self.keep and data_bytes <= 16 * self.keep):
            return None
        pieces: list = []
        copied = start
        for fstart, vend in data:
            if fstart > copied:
                pieces.append(self.view[copied:fstart])
            copied = vend
        if end > copied:
            pieces.append(self.view[copied:end])
        self.skipped += data_bytes
        self.cut += 1
        return pieces, (end - start) - data_bytes
