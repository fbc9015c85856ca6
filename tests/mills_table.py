"""The table of solvers.numba_runtime._ndtr, made anew (tests/test_numba_runtime.py compares).

The Mills ratio M(t) = (1 - Phi(t)) / phi(t) = sqrt(pi/2) erfcx(t / sqrt 2) is entire and smooth on
t >= 0; on each interval [k W, (k + 1) W), W = 1/2, k < 16 (t < 8) it is the polynomial of degree 12
in s = t - (k + 1/2) W fitted by least squares at 60 Chebyshev points in 40-digit arithmetic (mpmath):
its relative error is below 2e-16 (measured: 1.6e-16), i.e. rounding level.  Run as a script to print
the table in the form that solvers/numba_runtime.py holds.
"""
import mpmath as mp

WIDTH = 0.5
PIECES = 16
DEGREE = 12
NODES = 60


def mills(t):
    """M(t) in 40 digits."""
    with mp.workdps(40):
        t = mp.mpf(t)
        return mp.sqrt(mp.pi / 2) * mp.exp(t * t / 2) * mp.erfc(t / mp.sqrt(2))


def mills_table():
    """PIECES rows of DEGREE + 1 coefficients (lowest power first), as floats."""
    rows = []
    with mp.workdps(40):
        for k in range(PIECES):
            c = (k + mp.mpf(1) / 2) * WIDTH
            s = [mp.mpf(WIDTH) / 2 * mp.cos(mp.pi * (j + mp.mpf(1) / 2) / NODES) for j in range(NODES)]
            A = mp.matrix(NODES, DEGREE + 1)
            b = mp.matrix(NODES, 1)
            for j in range(NODES):
                for i in range(DEGREE + 1):
                    A[j, i] = s[j] ** i
                b[j] = mills(c + s[j])
            coef = mp.qr_solve(A, b)[0]
            rows.append([float(coef[i]) for i in range(DEGREE + 1)])
    return rows


if __name__ == "__main__":
    for row in mills_table():
        print("    (" + ", ".join(repr(v) for v in row) + "),")
