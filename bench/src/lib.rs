//! Clearhouse benchmarks: criterion benches in `benches/`, load generators in `src/bin/`.
