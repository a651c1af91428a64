"""Black hole (EHT/VLBI) video imaging: observation setup, closure forward model and likelihood, data, baselines.

Modules (one concept each): ``ehtim_compat`` (the only ehtim adapter), ``array`` (EHT 2017 stations, Sgr A* track),
``closures`` (minimal closure sets), ``measurements`` (visibility table, closure data), ``forward`` (torch separable
DFT -> closure phases / log closure amplitudes / flux), ``likelihood`` (ehtim chi-squares, paper Eq. 16),
``simulate`` (seeded noise, gains, phases), ``uvfits`` (I/O, frame splitting), ``movies`` (loaders, Datasets),
``synthetic`` (Sgr A*-like movie generator), ``fits_io`` (FITS frames, ehtim Movie), ``baselines`` (per-frame RML),
``cli`` (``stepvip blackhole ...``). ehtim is imported lazily (``ehtim_compat.import_ehtim``), never at package import.
"""
