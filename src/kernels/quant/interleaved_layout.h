// Inside kernels/quant/: where the bytes of each interleaved layout (interleave.h) lie — shared
// by the code that lays matrices out (interleave.cpp) and the kernels that read them
// (interleaved_vnni.cpp).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace zephyr::quant {

// A group of 8 rows is stored as columns, each holding the 8 rows' bytes of one segment of
// elements: 4 blocks (128 elements) of Q4_0, 2 blocks of Q4_1, one block of Q8_0, one super-block
// (256) of Q4_K / Q6_K; same bytes in total as the plain rows.
constexpr size_t kX8Q4 = 8 * 4 * 18, kX8Q8 = 8 * 34, kX8Q41 = 8 * 40, kX8Q4K = 8 * 144, kX8Q6K = 8 * 210;  // bytes per column

inline DType plain_type(DType t) {
  switch (t) {
    case DType::Q4_0x8: return DType::Q4_0;
    case DType::Q8_0x8: return DType::Q8_0;
    case DType::Q4_1x8: return DType::Q4_1;
    case DType::Q4_Kx8: return DType::Q4_K;
    case DType::Q6_Kx8: return DType::Q6_K;
    default: return t;
  }
}
inline int64_t segment_elements(DType plain) {
  return plain == DType::Q4_0 ? 128 : plain == DType::Q4_1 ? 64 : plain == DType::Q8_0 ? 32 : 256;
}

// Rows longer than kChunkElements are cut into column chunks of that many elements, stored one
// after the other, each holding all the groups' columns in it: a thread's rows still stream
// contiguously, and the activations of one chunk (2 KB of int8) stay in L1 while they do. With
// whole rows in a group the activations of long rows fell out of L1 and the stream slowed
// (1 thread, from DRAM: Q4_K rows of 16384 21 GB/s whole, 32 GB/s chunked; 4096: 27-29 -> 31).
constexpr int64_t kChunkElements = 2048;

// Where the columns of an interleaved [rows, cols] matrix lie.
struct ColumnChunks {
  size_t col_bytes;   // one column of a group (8 rows)
  int64_t ncol;       // columns per row
  int64_t per_chunk;  // columns per full chunk
  int64_t groups;     // rows / 8
  int64_t count() const { return (ncol + per_chunk - 1) / per_chunk; }
  int64_t begin(int64_t k) const { return k * per_chunk; }
  int64_t end(int64_t k) const { return std::min(ncol, (k + 1) * per_chunk); }
  // Byte offset of group g's column c.
  size_t offset(int64_t g, int64_t c) const {
    const int64_t k = c / per_chunk;
    return size_t(k * per_chunk * groups + g * (end(k) - begin(k)) + c - k * per_chunk) * col_bytes;
  }
};
inline ColumnChunks column_chunks(DType plain, int64_t rows, int64_t cols) {
  const int64_t e = segment_elements(plain);
  return {row_bytes(plain, e) * 8, cols / e, kChunkElements / e, rows / 8};
}

// Q8_0x8 (272 bytes): the 8 f16 d, then bytes 0-15 of the 8 rows' quants, then bytes 16-31. The
// lane-per-block layout below ran Q8_0 ~50% faster from cache but streamed from DRAM 7-16%
// slower (decode), so Q8_0 keeps this one.
//
// Q4_1x8 (320 bytes, a column of 2 blocks): lane l = 2r + i of a vector is row r's block i.
// First the 16 lanes' f16 d, then their f16 m, then 4 vectors j of 64 bytes: lane l holds bytes
// 4j..4j+3 of its block's nibbles (as in the plain block, byte k: element k low, k + 16 high). A
// lane's multiply-adds then cover a whole block, so one conversion and one scaling serve 32 weights
// of a row (with a row's block across 4 lanes, as before, they served 8: one thread, 8 tokens,
// SmolLM2's rows in cache ~95 -> ~130 GMAC/s; one token unchanged). Q4_1 rows are often not a
// multiple of Q4_0x8's 128 (SmolLM2's 576), hence 2 blocks per column.
//
// In the other layouts a vector holds rows 4h..4h+3 (h = r / 4) 16 bytes each, and lane i (bytes
// 4i..4i+3) of a row's 16 bytes belongs to block (or sub-block) 4p + i in pass p of the column. A
// chain of multiply-adds over one pass then needs one scale per lane: the row's scales of blocks
// 4p..4p+3, which is how the scale bytes are laid out. The activations come in the matching order
// (QuantizedActivations::k32, k16).
//   Q4_0x8 (576 bytes): per half h the f16 d of rows 4h..4h+3, blocks 0-3 (32 bytes); then per half
//   4 vectors L of 64 bytes: in row r's lane i, byte b, the low nibble is element 8L + b of block i
//   and the high one that + 4.
constexpr size_t kQ4Quants = 64;
//   Q4_Kx8 (1152 bytes): d of the 8 rows, dmin, bytes 0-3, 4-7, 8-11 of their packed scales (32
//   each); then per pass p (0, 1) and half h, 4 vectors L of 64 bytes: in row r's lane i, byte b,
//   the low nibble is element 32(4p + i) + 8L + b and the high one that + 4.
//   Q6_Kx8 (1680 bytes): d of the 8 rows; the int8 scales, per pass p (0..3) and half h 16 bytes
//   (row, then sub-block 4p + i); then per pass and half three vectors A, B, H of 64 bytes: at row
//   r's lane i, byte b, the 4 elements 16(4p + i) + 4v + b (v = 0..3) have their low nibbles in
//   A (v 0, 2: low, high), B (v 1, 3) and their top 2 bits in H (bits 2v, 2v + 1).
constexpr size_t kQ4KQuants = 128, kQ6KScales = 16, kQ6KQuants = 144;

}  // namespace zephyr::quant
