//! The tunnel controller and its backends: local delivery, kernel IPIP over
//! rtnetlink, userspace IPIP (TUN + raw IPPROTO_IPIP socket).
