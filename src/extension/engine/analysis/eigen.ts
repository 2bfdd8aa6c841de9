/**
 * Symmetric eigen solvers for the spectral clustering (spectral.ts), written for this engine:
 *
 * - `jacobiEigen`: all eigenpairs of a small dense symmetric matrix by cyclic Jacobi rotations. Each rotation
 *   J(p, q, theta) zeroes a_pq of A' = J^T A J with
 *     theta = (a_qq - a_pp) / (2 a_pq),  t = sign(theta) / (|theta| + sqrt(theta^2 + 1)),  c = 1 / sqrt(t^2 + 1),  s = t c
 *     a'_pp = a_pp - t a_pq,  a'_qq = a_qq + t a_pq,  a'_rp = c a_rp - s a_rq,  a'_rq = s a_rp + c a_rq  (r != p, q)
 *   and sweeps repeat until the off-diagonal mass is below 1e-22 of the total (quadratic convergence: a few
 *   sweeps). O(n^3) per sweep, so only for n up to a few hundred (the Rayleigh-Ritz matrices below).
 *
 * - `topEigenpairs`: the `want` largest eigenpairs of a large sparse symmetric operator given only as y = M x,
 *   by Rayleigh-Ritz on a block Krylov subspace span{X0, M X0, M^2 X0, ...} (block Lanczos with full
 *   reorthogonalisation). Why a block and not plain Lanczos: a k-nearest-neighbour graph with c connected
 *   components has the eigenvalue 1 of D^-1/2 W D^-1/2 exactly c times, and single-vector Lanczos finds one copy
 *   only; a block of b >= c start vectors spans them all. A new vector that vanishes after orthogonalisation
 *   (an invariant subspace was reached) is replaced by a fresh random one, which keeps Rayleigh-Ritz valid. The
 *   basis is capped (`maxBasis`); if the wanted Ritz pairs have not converged (residual ||M y - theta y|| <= tol)
 *   by then, the search restarts from the best want + b Ritz vectors (at most maxRestarts times; the best pairs
 *   found are returned with their residual either way). Cost per basis vector: one product with M (O(nnz))
 *   and a reorthogonalisation (O(n m)), so 10,000 maps take well under a second on the graphs used here.
 */

/** Deterministic 32-bit PRNG (splitmix32-style counter), so every solve and k-means start is reproducible. */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  }
}

export interface DenseEigen {
  /** Ascending. */
  values: Float64Array;
  /** vectors[i] is the unit eigenvector of values[i]. */
  vectors: Float64Array[];
}

/** All eigenpairs of the symmetric n x n matrix `a` (row-major; only read, never modified), ascending. */
export function jacobiEigen(a: Float64Array, n: number, maxSweeps = 60): DenseEigen {
  if (a.length !== n * n) throw new RangeError(`jacobiEigen: expected ${n * n} values, got ${a.length}`);
  const m = Float64Array.from(a);
  // Symmetrise what rounding may have broken.
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = m[j * n + i] = 0.5 * (m[i * n + j] + m[j * n + i]);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += m[i] * m[i];
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
    if (off <= 1e-22 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const app = m[p * n + p];
        const aqq = m[q * n + q];
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        m[p * n + p] = app - t * apq;
        m[q * n + q] = aqq + t * apq;
        m[p * n + q] = m[q * n + p] = 0;
        for (let r = 0; r < n; r++) {
          if (r === p || r === q) continue;
          const arp = m[r * n + p];
          const arq = m[r * n + q];
          const np = c * arp - s * arq;
          const nq = s * arp + c * arq;
          m[r * n + p] = m[p * n + r] = np;
          m[r * n + q] = m[q * n + r] = nq;
        }
        // Eigenvectors are the columns of V = J1 J2 ...; stored here as rows of v (v[k * n + i] = V[i][k]).
        for (let r = 0; r < n; r++) {
          const vp = v[p * n + r];
          const vq = v[q * n + r];
          v[p * n + r] = c * vp - s * vq;
          v[q * n + r] = s * vp + c * vq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[x * n + x] - m[y * n + y]);
  return {
    values: Float64Array.from(order, (i) => m[i * n + i]),
    vectors: order.map((i) => v.slice(i * n, (i + 1) * n)),
  };
}

export function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

/** Orthogonalises x against the unit vectors of `basis` in place (classical Gram-Schmidt, twice); returns its norm. */
function orthogonalise(x: Float64Array, basis: Float64Array[]): number {
  for (let pass = 0; pass < 2; pass++) {
    for (const b of basis) {
      const d = dot(x, b);
      if (d !== 0) for (let i = 0; i < x.length; i++) x[i] -= d * b[i];
    }
  }
  return Math.sqrt(dot(x, x));
}

export interface TopEigenOptions {
  seed?: number;
  /** Block size (default want + 2): at least the largest multiplicity expected among the wanted eigenvalues. */
  block?: number;
  /** Largest basis before a restart (default max(4 blocks, twice the restart set of want + b, plus a block)): the reorthogonalisation costs O(n m) per vector, so a
   *  small basis restarted from its best Ritz vectors beats one long run on large n. */
  maxBasis?: number;
  /** Residual bound of a converged Ritz pair (default 1e-3: eigenvalues are then good to about 1e-6/gap, and
   *  eigenvectors to 1e-3/gap, plenty to choose and embed clusters). The search also stops when no wanted Ritz
   *  value moved by more than tol since the previous check and the residuals are below sqrt(tol) (they rise monotonically towards the eigenvalues,
   *  and the tail of a k-NN graph's spectrum is so crowded that its vectors converge slowly, while the values
   *  and the leading vectors, all the clustering uses, are long settled). */
  tol?: number;
  maxRestarts?: number;
}

export interface TopEigen {
  /** The `want` largest eigenvalues, descending. */
  values: Float64Array;
  vectors: Float64Array[];
  /** Products with M performed, and the largest residual of the pairs returned. */
  matvecs: number;
  residual: number;
}

/** The `want` largest eigenpairs of the symmetric operator `matvec` (writes M x into the zeroed y). */
export function topEigenpairs(matvec: (x: Float64Array, y: Float64Array) => void, n: number, want: number, opts: TopEigenOptions = {}): TopEigen {
  if (!(want >= 1 && want <= n)) throw new RangeError(`topEigenpairs: want must be in 1..${n}, got ${want}`);
  const rng = new SeededRandom(opts.seed ?? 12345);
  const b = Math.min(n, opts.block ?? want + 2);
  const maxBasis = Math.min(n, Math.max(opts.maxBasis ?? Math.max(4 * b, 2 * (want + b) + b), 3 * b));
  const tol = opts.tol ?? 1e-3;
  const maxRestarts = opts.maxRestarts ?? 40;
  const random = () => Float64Array.from({ length: n }, () => rng.next() - 0.5);
  let matvecs = 0;
  const apply = (x: Float64Array) => {
    const y = new Float64Array(n);
    matvec(x, y);
    matvecs++;
    return y;
  };
  let start: Float64Array[] = Array.from({ length: b }, random);
  let best: TopEigen | undefined;
  let previous: Float64Array | undefined;
  for (let restart = 0; restart <= maxRestarts; restart++) {
    const V: Float64Array[] = [];
    const W: Float64Array[] = [];
    const tcols: Float64Array[] = [];
    let block = start;
    let lastCheck = 0;
    for (;;) {
      const next: Float64Array[] = [];
      for (const cand of block) {
        if (V.length >= maxBasis) break;
        let x = cand;
        let norm = orthogonalise(x, V);
        // A vanished candidate (invariant subspace reached, or a dependent block): a fresh direction instead.
        for (let tries = 0; norm < 1e-8 && tries < 5; tries++) {
          x = random();
          norm = orthogonalise(x, V);
        }
        if (norm < 1e-8) continue;
        for (let i = 0; i < n; i++) x[i] /= norm;
        V.push(x);
        const w = apply(x);
        W.push(w);
        // Column j of the Rayleigh quotient matrix T = V^T M V, once per new vector (T is symmetric).
        tcols.push(Float64Array.from(V, (v) => dot(v, w)));
        next.push(w.slice());
      }
      const m = V.length;
      const full = m >= maxBasis || m >= n || next.length === 0;
      // Rayleigh-Ritz every other block (Jacobi is O(m^3)), and always at the cap.
      const due = full || (m >= want + b && m - lastCheck >= b);
      if (!due) {
        block = next;
        continue;
      }
      lastCheck = m;
      const T = new Float64Array(m * m);
      for (let j = 0; j < m; j++) for (let i = 0; i <= j; i++) T[i * m + j] = T[j * m + i] = tcols[j][i];
      const eig = jacobiEigen(T, m);
      const k = Math.min(want, m);
      const values = new Float64Array(k);
      const vectors: Float64Array[] = [];
      let residual = 0;
      const ritz: Float64Array[] = [];
      // The wanted Ritz vectors; at the cap also the next ones: the restart keeps want + b of them (a thick
      // restart), so that copies of a repeated eigenvalue and the directions towards them are not lost.
      const keep = Math.min(m, want + b, Math.floor(maxBasis / 2));
      for (let r = 0; r < Math.min(m, full ? Math.max(k, keep) : k); r++) {
        const s = eig.vectors[m - 1 - r];
        const y = new Float64Array(n);
        const my = new Float64Array(n);
        for (let j = 0; j < m; j++) {
          const sj = s[j];
          if (sj === 0) continue;
          const vj = V[j];
          const wj = W[j];
          for (let i = 0; i < n; i++) {
            y[i] += sj * vj[i];
            my[i] += sj * wj[i];
          }
        }
        ritz.push(y);
        if (r < k) {
          const theta = eig.values[m - 1 - r];
          let res = 0;
          for (let i = 0; i < n; i++) res += (my[i] - theta * y[i]) ** 2;
          residual = Math.max(residual, Math.sqrt(res));
          values[r] = theta;
          vectors.push(y);
        }
      }
      const stable = previous !== undefined && residual <= Math.sqrt(tol) && values.every((v, i) => Math.abs(v - (previous as Float64Array)[i]) <= tol);
      previous = values;
      best = { values, vectors, matvecs, residual };
      if (residual <= tol || stable || m >= n) return best;
      if (full) {
        start = ritz.slice(0, Math.max(b, keep));
        // A restarted basis first reproduces these very Ritz values: no evidence of convergence.
        previous = undefined;
        break;
      }
      block = next;
    }
  }
  return best as TopEigen;
}
