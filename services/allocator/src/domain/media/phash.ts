// Perceptual hash (spec §3.6.4): the signs of the lowest 8×8 DCT frequencies of a 32×32 luma image relative
// to their median, which survive re-encoding and mild resizing, so near-duplicates have a small Hamming distance.

const SIDE = 32;
const LOW = 8;

// cos(π(2x+1)u / 64) for the 8 lowest frequencies u over the 32 samples x.
const COSINES = (() => {
  const table = new Float64Array(LOW * SIDE);
  for (let u = 0; u < LOW; u++) {
    for (let x = 0; x < SIDE; x++) table[u * SIDE + x] = Math.cos((Math.PI * (2 * x + 1) * u) / (2 * SIDE));
  }
  return table;
})();

/** The 64-bit pHash of a 32×32 luma matrix (1024 values row-major) as 16 lowercase hex characters. */
export function perceptualHashFromLuma32(luma: Float64Array): string {
  if (luma.length !== SIDE * SIDE) throw new Error(`pHash needs 1024 luma values, got ${luma.length}`);
  // Separable unnormalised DCT-II, computed only for the 8×8 low-frequency corner: rows first, then columns.
  const rowPass = new Float64Array(SIDE * LOW); // [y][v]: horizontal frequency v of row y
  for (let y = 0; y < SIDE; y++) {
    for (let v = 0; v < LOW; v++) {
      let sum = 0;
      for (let x = 0; x < SIDE; x++)
        sum += (luma[y * SIDE + x] as number) * (COSINES[v * SIDE + x] as number);
      rowPass[y * LOW + v] = sum;
    }
  }
  const coefficients = new Float64Array(LOW * LOW); // [u][v]: vertical frequency u, horizontal frequency v
  for (let u = 0; u < LOW; u++) {
    for (let v = 0; v < LOW; v++) {
      let sum = 0;
      for (let y = 0; y < SIDE; y++)
        sum += (rowPass[y * LOW + v] as number) * (COSINES[u * SIDE + y] as number);
      coefficients[u * LOW + v] = sum;
    }
  }
  const sorted = Float64Array.from(coefficients).sort();
  const median = ((sorted[31] as number) + (sorted[32] as number)) / 2;
  let hex = '';
  for (let nibble = 0; nibble < 16; nibble++) {
    let value = 0;
    for (let bit = 0; bit < 4; bit++)
      value = (value << 1) | ((coefficients[nibble * 4 + bit] as number) > median ? 1 : 0);
    hex += value.toString(16);
  }
  return hex;
}

/** Number of differing bits of two 16-hex-character hashes. */
export function hammingDistance(a: string, b: string): number {
  if (!/^[0-9a-fA-F]{16}$/.test(a) || !/^[0-9a-fA-F]{16}$/.test(b)) {
    throw new Error(`perceptual hashes must be 16 hex characters, got '${a}' and '${b}'`);
  }
  let distance = 0;
  for (let i = 0; i < 16; i++) {
    let diff = Number.parseInt(a[i] as string, 16) ^ Number.parseInt(b[i] as string, 16);
    while (diff !== 0) {
      distance += diff & 1;
      diff >>= 1;
    }
  }
  return distance;
}
