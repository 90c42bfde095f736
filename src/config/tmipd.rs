//! tmipd's typed configuration, filled from `tmipd.rc` or UCI.
