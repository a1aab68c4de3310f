"""An intermittent CPU hog: spins for 0.1-0.5 s, then rests 0.2-1.0 s, until killed."""

import random
import time

rng = random.Random()
while True:
    ended = time.perf_counter() + rng.uniform(0.1, 0.5)
    while time.perf_counter() < ended:
        pass
    time.sleep(rng.uniform(0.2, 1.0))
