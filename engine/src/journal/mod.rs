//! The market-hours trade journal (issue 3): lock-free multi-producer appends, CRC32C and a
//! hash chain per record, segmented files, group commit, recovery.
