//! Checked views of the link and network headers TMip reads and writes:
//! Ethernet, ARP, IPv4, UDP (smoltcp `wire` style).
