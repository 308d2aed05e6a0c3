#include "kernels/quant/interleave.h"

#include <cstring>

#include "kernels/quant/formats.h"
#include "kernels/quant/interleaved_layout.h"
#include "kernels/quant/isa.h"

namespace zephyr {

using namespace quant;

namespace {

// Each layout's row r of a group: its segment of plain blocks into the group's column (put), and
// back out of it (get). interleaved_layout.h says where the bytes go.
void q8x8_put(const uint8_t* blk, int r, uint8_t* col) {
  std::memcpy(col + 2 * r, blk, 2);
  for (int h = 0; h < 2; ++h) std::memcpy(col + 16 + 128 * h + 16 * r, blk + 2 + 16 * h, 16);
}
void q8x8_get(const uint8_t* col, int r, uint8_t* blk) {
  std::memcpy(blk, col + 2 * r, 2);
  for (int h = 0; h < 2; ++h) std::memcpy(blk + 2 + 16 * h, col + 16 + 128 * h + 16 * r, 16);
}

void q41x8_put(const uint8_t* seg, int r, uint8_t* col) {
  for (int i = 0; i < 2; ++i) {
    const uint8_t* blk = seg + 20 * i;
    const size_t l = size_t(2 * r + i);
    std::memcpy(col + 2 * l, blk, 2);
    std::memcpy(col + 32 + 2 * l, blk + 2, 2);
    for (size_t j = 0; j < 4; ++j) std::memcpy(col + 64 + 64 * j + 4 * l, blk + 4 + 4 * j, 4);
  }
}
void q41x8_get(const uint8_t* col, int r, uint8_t* seg) {
  for (int i = 0; i < 2; ++i) {
    uint8_t* blk = seg + 20 * i;
    const size_t l = size_t(2 * r + i);
    std::memcpy(blk, col + 2 * l, 2);
    std::memcpy(blk + 2, col + 32 + 2 * l, 2);
    for (size_t j = 0; j < 4; ++j) std::memcpy(blk + 4 + 4 * j, col + 64 + 64 * j + 4 * l, 4);
  }
}

// The 32 4-bit values u of one (sub-)block into its lane of 4 vectors 64 bytes apart (Q4_0x8 and
// Q4_Kx8): byte k of vector L holds u[8L + k] in its low nibble and u[8L + 4 + k] in its high one.
void put_nibble_lane(const uint8_t* u, uint8_t* lane) {
  for (size_t L = 0; L < 4; ++L)
    for (size_t k = 0; k < 4; ++k) lane[64 * L + k] = uint8_t(u[8 * L + k] | (u[8 * L + 4 + k] << 4));
}
void get_nibble_lane(const uint8_t* lane, uint8_t* u) {
  for (size_t L = 0; L < 4; ++L)
    for (size_t k = 0; k < 4; ++k) u[8 * L + k] = lane[64 * L + k] & 0xF, u[8 * L + 4 + k] = lane[64 * L + k] >> 4;
}

void q4x8_put(const uint8_t* seg, int r, uint8_t* col) {
  const size_t ri = size_t(r), h = ri / 4, row = ri % 4;
  for (size_t i = 0; i < 4; ++i) {
    const uint8_t* blk = seg + i * sizeof(BlockQ4_0);  // f16 d, then the nibbles
    std::memcpy(col + 32 * h + 8 * row + 2 * i, blk, 2);
    uint8_t u[32];
    for (int j = 0; j < 16; ++j) u[j] = blk[2 + j] & 0xF, u[j + 16] = blk[2 + j] >> 4;
    put_nibble_lane(u, col + kQ4Quants + 256 * h + 16 * row + 4 * i);
  }
}

void q4x8_get(const uint8_t* col, int r, uint8_t* seg) {
  const size_t ri = size_t(r), h = ri / 4, row = ri % 4;
  for (size_t i = 0; i < 4; ++i) {
    uint8_t* blk = seg + i * sizeof(BlockQ4_0);
    std::memcpy(blk, col + 32 * h + 8 * row + 2 * i, 2);
    uint8_t u[32];
    get_nibble_lane(col + kQ4Quants + 256 * h + 16 * row + 4 * i, u);
    for (int j = 0; j < 16; ++j) blk[2 + j] = uint8_t(u[j] | (u[j + 16] << 4));
  }
}

// Row r's block (blk, plain layout) into a K-quant column (put), or back out of it (get). The
// quants go through an array of 256 values in element order; q is the row's first byte in the
// column's vectors for pass p = 0, half h = r / 4.
void kx8_put(DType plain, const uint8_t* blk, int r, uint8_t* col) {
  const size_t ri = size_t(r), h = ri / 4;
  uint8_t u[256];
  if (plain == DType::Q4_K) {
    const auto& b = *reinterpret_cast<const BlockQ4_K*>(blk);
    std::memcpy(col + 2 * ri, &b.d, 2);
    std::memcpy(col + 16 + 2 * ri, &b.dmin, 2);
    for (size_t w = 0; w < 3; ++w) std::memcpy(col + 32 + 32 * w + 4 * ri, b.scales + 4 * w, 4);
    q4k_values(b, u);
    uint8_t* q = col + kQ4KQuants + 256 * h + 16 * (ri % 4);
    for (int j = 0; j < 8; ++j) put_nibble_lane(u + 32 * j, q + 512 * (j / 4) + 4 * (j % 4));  // sub-block j: pass j / 4, lane j % 4
    return;
  }
  const auto& b = *reinterpret_cast<const BlockQ6_K*>(blk);
  std::memcpy(col + 2 * ri, &b.d, 2);
  for (size_t k = 0; k < 16; ++k) col[kQ6KScales + 32 * (k / 4) + 16 * h + 4 * (ri % 4) + k % 4] = uint8_t(b.scales[k]);
  for (int e = 0; e < 256; ++e) u[e] = uint8_t(q6k_value(b, e));
  uint8_t* q = col + kQ6KQuants + 192 * h + 16 * (ri % 4);
  for (int p = 0; p < 4; ++p)
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 4; ++k) {
        const uint8_t* v = u + 16 * (4 * p + i) + k;  // v[0], v[4], v[8], v[12]: values 0..3
        uint8_t* o = q + 384 * p + 4 * i + k;
        o[0] = uint8_t((v[0] & 0xF) | ((v[8] & 0xF) << 4));
        o[64] = uint8_t((v[4] & 0xF) | ((v[12] & 0xF) << 4));
        o[128] = uint8_t((v[0] >> 4) | ((v[4] >> 4) << 2) | ((v[8] >> 4) << 4) | ((v[12] >> 4) << 6));
      }
}

void kx8_get(DType plain, const uint8_t* col, int r, uint8_t* blk) {
  const size_t ri = size_t(r), h = ri / 4;
  uint8_t u[256];
  if (plain == DType::Q4_K) {
    auto& b = *reinterpret_cast<BlockQ4_K*>(blk);
    std::memcpy(&b.d, col + 2 * ri, 2);
    std::memcpy(&b.dmin, col + 16 + 2 * ri, 2);
    for (size_t w = 0; w < 3; ++w) std::memcpy(b.scales + 4 * w, col + 32 + 32 * w + 4 * ri, 4);
    const uint8_t* q = col + kQ4KQuants + 256 * h + 16 * (ri % 4);
    for (int j = 0; j < 8; ++j) get_nibble_lane(q + 512 * (j / 4) + 4 * (j % 4), u + 32 * j);
    return q4k_store_values(u, b);
  }
  auto& b = *reinterpret_cast<BlockQ6_K*>(blk);
  std::memcpy(&b.d, col + 2 * ri, 2);
  for (size_t k = 0; k < 16; ++k) b.scales[k] = int8_t(col[kQ6KScales + 32 * (k / 4) + 16 * h + 4 * (ri % 4) + k % 4]);
  const uint8_t* q = col + kQ6KQuants + 192 * h + 16 * (ri % 4);
  for (int p = 0; p < 4; ++p)
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 4; ++k) {
        uint8_t* v = u + 16 * (4 * p + i) + k;
        const uint8_t* o = q + 384 * p + 4 * i + k;
        v[0] = uint8_t((o[0] & 0xF) | ((o[128] & 3) << 4));
        v[4] = uint8_t((o[64] & 0xF) | (((o[128] >> 2) & 3) << 4));
        v[8] = uint8_t((o[0] >> 4) | (((o[128] >> 4) & 3) << 4));
        v[12] = uint8_t((o[64] >> 4) | ((o[128] >> 6) << 4));
      }
  q6k_store_values(u, b);
}

// Row r's segment (plain layout) into its group's column, and back.
void x8_put(DType plain, const uint8_t* seg, int r, uint8_t* col) {
  if (plain == DType::Q4_K || plain == DType::Q6_K) return kx8_put(plain, seg, r, col);
  if (plain == DType::Q8_0) return q8x8_put(seg, r, col);
  if (plain == DType::Q4_1) return q41x8_put(seg, r, col);
  q4x8_put(seg, r, col);
}
void x8_get(DType plain, const uint8_t* col, int r, uint8_t* seg) {
  if (plain == DType::Q4_K || plain == DType::Q6_K) return kx8_get(plain, col, r, seg);
  if (plain == DType::Q8_0) return q8x8_get(col, r, seg);
  if (plain == DType::Q4_1) return q41x8_get(col, r, seg);
  q4x8_get(col, r, seg);
}

}  // namespace

DType interleaved_type(DType t, int64_t rows, int64_t cols) {
  DType fast;
  switch (t) {
    case DType::Q4_0: fast = DType::Q4_0x8; break;
    case DType::Q8_0: fast = DType::Q8_0x8; break;
    case DType::Q4_1: fast = DType::Q4_1x8; break;
    case DType::Q4_K: fast = DType::Q4_Kx8; break;
    case DType::Q6_K: fast = DType::Q6_Kx8; break;
    default: return t;
  }
  return best_isa() == Isa::Vnni && rows % 8 == 0 && cols % segment_elements(t) == 0 ? fast : t;
}

void interleave_groups(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols, int64_t g0, int64_t g1) {
  const ColumnChunks ch = column_chunks(t, rows, cols);
  const size_t seg = ch.col_bytes / 8, row_b = row_bytes(t, cols);
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t c = 0; c < ch.ncol; ++c)
      for (int r = 0; r < 8; ++r) x8_put(t, src + size_t(8 * (g - g0) + r) * row_b + size_t(c) * seg, r, dst + ch.offset(g, c));
}

void interleave_rows(DType t, const uint8_t* src, uint8_t* dst, int64_t rows, int64_t cols) {
  interleave_groups(t, src, dst, rows, cols, 0, rows / 8);
}

void dequantize_interleaved_row(DType t, const void* base, int64_t rows, int64_t row, int64_t cols, float* out) {
  const DType plain = plain_type(t);
  const ColumnChunks ch = column_chunks(plain, rows, cols);
  const int64_t e = segment_elements(plain);
  uint8_t buf[sizeof(BlockQ6_K)];  // the largest segment (Q4_0: 72 bytes, Q8_0: 34)
  for (int64_t c = 0; c < ch.ncol; ++c) {
    x8_get(plain, static_cast<const uint8_t*>(base) + ch.offset(row / 8, c), int(row % 8), buf);
    dequantize_row(plain, buf, out + e * c, e);
  }
}

}  // namespace zephyr
