# Ordinary workload: numpy, when installed (the test skips it otherwise).
import numpy as np

a = np.arange(12, dtype=np.int64).reshape(3, 4)
print(a.sum(axis=0).tolist(), a.T.dot(a).trace())
print(np.linalg.solve(np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([9.0, 8.0])).round(6).tolist())
