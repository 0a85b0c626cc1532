"""`python -m tracer1.envs.miniwob --tasks T1,T2 --episodes N --out DIR`: write planning samples (see
`samples.main`)."""

import sys

from tracer1.envs.miniwob.samples import main

sys.exit(main())
