//! Arrival detection by capture on the mobile interface (libpcap, BPF
//! filter, non-blocking, polled by the event loop).
