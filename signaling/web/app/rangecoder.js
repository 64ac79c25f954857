// The range decoder and the three entropy models of constriction 0.5 that the keypoint coding uses, so the
// page decodes exactly what the Python sender encoded (shared_model/wire/keycoding.py).
//
// constriction's defaults: 32-bit words, a 64-bit state, model probabilities of 24 bits.
// Uniform: every symbol gets floor(2^24 / size), the last one the rest.
// Categorical (perfect=False): constriction's fast quantization of float probabilities p_i, left cumulative of
// symbol i = trunc(P_i * (2^24 - n) / sum(p)) + i, P_i the float64 sum of the p before it.
// QuantizedLaplace: constriction's "leaky" quantizer, which gives every symbol in [min, max] a probability
// of at least 2^-24. The left cumulative of symbol s is trunc(w * F(s - 0.5)) + (s - min), w = (2^24 - 1) -
// (max - min), F the Laplace CDF evaluated in float64 with the exp of Rust's libm crate (FreeBSD msun's
// e_exp.c, ported below): JavaScript's Math.exp may differ from it in the last bit, which could move a
// cumulative by one and desynchronise the decoder.

const PRECISION = 24;
const TOTAL = 2 ** PRECISION;
const MASK64 = (1n << 64n) - 1n;
const WORD_BITS = 32n;

/** Coded data that no encoder wrote (constriction reports it as invalid data). */
export class InvalidData extends Error {}

/** constriction's `stream.queue.RangeDecoder` over big-endian 32-bit words. */
export class RangeDecoder {
  /** @param {Uint32Array} words */
  constructor(words) {
    this.words = words;
    this.pos = 0;
    this.lower = 0n;
    this.range = MASK64;
    let point = 0n;
    let read = 0;
    while (read < 2 && this.pos < words.length) {
      point = (point << WORD_BITS) | BigInt(words[this.pos++]);
      read += 1;
    }
    this.point = read === 1 ? point << WORD_BITS : point;
  }

  /** The next symbol under `model` (an object with `quantile(q) -> [symbol, left, probability]`). */
  decode(model) {
    const scale = this.range >> BigInt(PRECISION);
    const quantile = ((this.point - this.lower) & MASK64) / scale;
    if (quantile >= BigInt(TOTAL)) {
      throw new InvalidData("invalid compressed data");
    }
    const [symbol, left, probability] = model.quantile(Number(quantile));
    this.lower = (this.lower + scale * BigInt(left)) & MASK64;
    this.range = scale * BigInt(probability);
    if (this.range < 1n << (64n - WORD_BITS)) {
      this.lower = (this.lower << WORD_BITS) & MASK64;
      this.range <<= WORD_BITS;
      this.point = (this.point << WORD_BITS) & MASK64;
      if (this.pos < this.words.length) {
        this.point |= BigInt(this.words[this.pos++]);
      }
    }
    return symbol;
  }
}

/** constriction's `stream.model.Uniform(size)`: symbols 0 .. size-1. */
export class Uniform {
  constructor(size) {
    if (!(Number.isInteger(size) && size > 1 && size <= TOTAL)) {
      throw new RangeError(`uniform model of size ${size}`);
    }
    this.perBin = Math.floor(TOTAL / size);
    this.last = size - 1;
  }

  quantile(q) {
    const guess = Math.floor(q / this.perBin);
    if (guess < this.last) {
      return [guess, guess * this.perBin, this.perBin];
    }
    const left = this.last * this.perBin;
    return [this.last, left, TOTAL - left];
  }
}

/** constriction's `stream.model.Categorical(probabilities, perfect=False)`: symbols 0 .. n-1. */
export class Categorical {
  constructor(probabilities) {
    const n = probabilities.length;
    const scale = (TOTAL - n) / probabilities.reduce((a, b) => a + b, 0);
    let cumulative = 0;
    this.lefts = probabilities.map((p, i) => {
      const left = Math.trunc(cumulative * scale) + i;
      cumulative += p;
      return left;
    });
  }

  quantile(q) {
    let symbol = this.lefts.length - 1;
    while (this.lefts[symbol] > q) symbol -= 1;
    const right = symbol + 1 < this.lefts.length ? this.lefts[symbol + 1] : TOTAL;
    return [symbol, this.lefts[symbol], right - this.lefts[symbol]];
  }
}

/** constriction's `stream.model.QuantizedLaplace(min, max)` with a given mean and scale. */
export class QuantizedLaplace {
  constructor(min, max, mean, scale) {
    if (!(max > min && scale > 0)) {
      throw new RangeError(`Laplace model on [${min}, ${max}] with scale ${scale}`);
    }
    this.min = min;
    this.max = max;
    this.mean = mean;
    this.scale = scale;
    this.freeWeight = TOTAL - 1 - (max - min);
  }

  /** The probability.rs Laplace CDF. */
  cdf(x) {
    const { mean, scale } = this;
    return x <= mean ? 0.5 * exp((x - mean) / scale) : 1.0 - 0.5 * exp(-(x - mean) / scale);
  }

  /** Left cumulative of `symbol` in fixed point (the leaky quantizer's). */
  left(symbol) {
    if (symbol === this.min) {
      return 0;
    }
    return Math.trunc(this.freeWeight * this.cdf(symbol - 0.5)) + (symbol - this.min);
  }

  quantile(q) {
    // The largest symbol whose left cumulative is <= q; its right cumulative is the next one's left.
    let lo = this.min;
    let hi = this.max;
    while (lo < hi) {
      const mid = lo + Math.ceil((hi - lo) / 2);
      if (this.left(mid) <= q) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const left = this.left(lo);
    const right = lo === this.max ? TOTAL : this.left(lo + 1);
    return [lo, left, right - left];
  }
}

// --- exp(x) as Rust's libm crate computes it (FreeBSD msun e_exp.c): argument reduction x = k ln2 + r,
// a degree-5 rational approximation of exp(r), then scaling by 2^k. Plain float64 operations in the same
// order, so every engine gets the same bits.

const LN2_HI = 6.93147180369123816490e-1;
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.44269504088896338700e0;
const P1 = 1.66666666666666019037e-1;
const P2 = -2.77777777770155933842e-3;
const P3 = 6.61375632143793436117e-5;
const P4 = -1.65339022054652515390e-6;
const P5 = 4.13813679705723846039e-8;
const bits = new DataView(new ArrayBuffer(8));

function highWord(x) {
  bits.setFloat64(0, x);
  return bits.getUint32(0);
}

/** 2^n for -1022 <= n <= 1023. */
function pow2(n) {
  bits.setUint32(0, (0x3ff + n) << 20);
  bits.setUint32(4, 0);
  return bits.getFloat64(0);
}

function scalbn(x, n) {
  if (n > 1023) {
    x *= pow2(1023);
    n -= 1023;
    if (n > 1023) {
      x *= pow2(1023);
      n = Math.min(n - 1023, 1023);
    }
  } else if (n < -1022) {
    const mul = pow2(-1022) * pow2(53);
    x *= mul;
    n += 1022 - 53;
    if (n < -1022) {
      x *= mul;
      n = Math.max(n + 1022 - 53, -1022);
    }
  }
  return x * pow2(n);
}

export function exp(x) {
  const hxSigned = highWord(x);
  const sign = hxSigned >>> 31;
  const hx = hxSigned & 0x7fffffff;
  if (hx >= 0x4086232b) {
    if (Number.isNaN(x)) {
      return x;
    }
    if (x > 709.782712893383973096) {
      return x * pow2(1023);
    }
    if (x < -745.13321910194110842) {
      return 0;
    }
  }
  let k;
  let hi;
  let lo;
  if (hx > 0x3fd62e42) {
    k = hx >= 0x3ff0a2b2 ? Math.trunc(INV_LN2 * x + (sign ? -0.5 : 0.5)) : 1 - sign - sign;
    hi = x - k * LN2_HI;
    lo = k * LN2_LO;
    x = hi - lo;
  } else if (hx > 0x3e300000) {
    k = 0;
    hi = x;
    lo = 0;
  } else {
    return 1 + x;
  }
  const xx = x * x;
  const c = x - xx * (P1 + xx * (P2 + xx * (P3 + xx * (P4 + xx * P5))));
  const y = 1 + ((x * c) / (2 - c) - lo + hi);
  return k === 0 ? y : scalbn(y, k);
}
