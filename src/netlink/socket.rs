//! A netlink socket (NETLINK_ROUTE, or NETLINK_NETFILTER for nf_tables):
//! send one request, collect its reply (ACK, error or dump) with a receive
//! timeout. Blocking is acceptable here: the kernel answers these requests
//! synchronously, in microseconds.

use super::message::{messages, NlMsg, NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTI};
use super::NetlinkError;
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

const RECV_BUF: usize = 64 * 1024;

pub struct RtSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl RtSocket {
    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    pub fn open() -> Result<RtSocket, NetlinkError> {
        Self::open_protocol(libc::NETLINK_ROUTE, "socket(NETLINK_ROUTE)")
    }

    /// Opens a netlink socket of another protocol (`NETLINK_NETFILTER`).
    pub fn open_protocol(protocol: i32, what: &'static str) -> Result<RtSocket, NetlinkError> {
        let fd = sys::socket::open(libc::AF_NETLINK, libc::SOCK_RAW, protocol)
            .map_err(|e| NetlinkError::Io(what, e))?;
        sys::socket::bind_netlink(fd.as_fd()).map_err(|e| NetlinkError::Io("bind(netlink)", e))?;
        let s = RtSocket {
            fd,
            seq: std::process::id().wrapping_mul(7919),
            buf: vec![0; RECV_BUF],
        };
        s.set_timeout(Duration::from_secs(2))?;
        Ok(s)
    }

    pub fn set_timeout(&self, t: Duration) -> Result<(), NetlinkError> {
        sys::socket::set_recv_timeout(self.fd.as_fd(), t)
            .map_err(|e| NetlinkError::Io("SO_RCVTIMEO", e))
    }

    /// The next sequence number for a request.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Skips `n` sequence numbers (a batch numbered its messages itself).
    pub fn advance_seq(&mut self, n: u32) {
        self.seq = self.seq.wrapping_add(n);
    }

    fn send(&self, req: &[u8]) -> Result<(), NetlinkError> {
        sys::socket::send_to_kernel(self.fd.as_fd(), req)
            .map(drop)
            .map_err(|e| NetlinkError::Io("send(netlink)", e))
    }

    fn recv(&mut self) -> Result<usize, NetlinkError> {
        loop {
            match sys::socket::recv(self.fd.as_fd(), &mut self.buf, 0) {
                Ok(n) => return Ok(n),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Err(NetlinkError::Timeout),
                    _ => return Err(NetlinkError::Io("recv(netlink)", e)),
                },
            }
        }
    }

    /// Sends `req` (built with sequence `seq`) and waits for its ACK.
    /// A kernel error comes back as [`NetlinkError::Kernel`] with the errno.
    pub fn request_ack(&mut self, req: &[u8], seq: u32) -> Result<(), NetlinkError> {
        self.send(req)?;
        loop {
            let n = self.recv()?;
            for m in messages(&self.buf[..n]) {
                let m = m?;
                if m.seq != seq {
                    continue; // a late reply to an earlier timed-out request
                }
                if m.msg_type == NLMSG_ERROR {
                    let code = m.error_code()?;
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(NetlinkError::Kernel(-code))
                    };
                }
            }
        }
    }

    /// Sends an nfnetlink batch whose messages (sequence numbers `first..=last`,
    /// each with NLM_F_ACK) sit between a batch begin numbered `first - 1` and
    /// a batch end. The kernel applies the batch as one transaction and
    /// answers every message; the first refusal is returned. A refusal
    /// aimed at the batch begin (the commit failed) fails the whole batch.
    pub fn request_batch(&mut self, req: &[u8], first: u32, last: u32) -> Result<(), NetlinkError> {
        self.send(req)?;
        let begin = first.wrapping_sub(1);
        let expected = last.wrapping_sub(first).wrapping_add(1) as usize;
        let mut answered = 0usize;
        let mut refused = None;
        while answered < expected {
            let n = self.recv()?;
            for m in messages(&self.buf[..n]) {
                let m = m?;
                if m.msg_type != NLMSG_ERROR {
                    continue;
                }
                let code = m.error_code()?;
                if m.seq == begin {
                    return Err(NetlinkError::Kernel(-code));
                }
                if m.seq.wrapping_sub(first) as usize >= expected {
                    continue; // a late reply to an earlier request
                }
                answered += 1;
                if code != 0 && refused.is_none() {
                    refused = Some(NetlinkError::Kernel(-code));
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends a request that answers with messages (a dump, or a GET of one
    /// object) and hands each reply message to `each`.
    pub fn request_dump(
        &mut self,
        req: &[u8],
        seq: u32,
        mut each: impl FnMut(&NlMsg<'_>) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        self.send(req)?;
        loop {
            let n = self.recv()?;
            let mut done = false;
            // Copy out so `each` may borrow freely; dumps are small.
            let buf = self.buf[..n].to_vec();
            for m in messages(&buf) {
                let m = m?;
                if m.seq != seq {
                    continue;
                }
                match m.msg_type {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let code = m.error_code()?;
                        if code != 0 {
                            return Err(NetlinkError::Kernel(-code));
                        }
                        done = true;
                    }
                    _ => {
                        each(&m)?;
                        if m.flags & NLM_F_MULTI == 0 {
                            done = true; // a single (non-dump) answer
                        }
                    }
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}

impl AsRawFd for RtSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
