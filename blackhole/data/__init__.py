"""Package data: the EHT 2017 station table (``EHT2017.txt``, ehtim array-file format) used by ``blackhole.array``."""
