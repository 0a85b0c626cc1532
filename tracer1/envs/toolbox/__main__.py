"""`python -m tracer1.envs.toolbox --episodes N --out DIR`: write planning samples (see `samples.main`)."""

import sys

from tracer1.envs.toolbox.samples import main

sys.exit(main())
