//! The MLR link's socket: carries out what the link's state machine
//! ([`super::mlr_link::MlrLink`]) asks (connect, close, write), feeds it
//! what arrives and what time it is, and hands its events to the core.
//! No decision about the link is taken here.

use super::events::CnEvent;
use super::mlr_link::{Action, Event};
use super::poll_loop::{Daemon, MlrTag};
use super::translate;
use crate::event_loop::Readiness;
use crate::mlrp::{self, Message};
use std::time::Instant;

/// Bytes read from the MLR per readiness: a flood must not starve the loop.
const READ_BUDGET: usize = 128 << 10;

impl Daemon {
    /// The link's timers (heartbeat, deadline, retry).
    pub(super) fn mlr_timeout(&mut self, now: Instant) {
        if self.mlr.poll_timeout().is_some_and(|t| t <= now) {
            self.mlr.handle_timeout(now);
            self.mlr_actions();
        }
    }

    pub(super) fn on_mlr(&mut self, r: Readiness) {
        let now = Instant::now();
        let Some(c) = self.mlr_conn.as_mut() else {
            return;
        };
        if c.is_connecting() {
            if !(r.writable || r.error) {
                return;
            }
            match c.finish_connect() {
                Ok(true) => self.mlr.handle_connected(now),
                Ok(false) => return,
                Err(e) => self.mlr.handle_closed(&format!("connect: {e}"), now),
            }
            self.mlr_actions();
            return;
        }
        if r.readable || r.error {
            let mlr = &mut self.mlr;
            if let Err(why) = c.read_all(READ_BUDGET, |b| mlr.handle_input(b, now)) {
                self.mlr.handle_closed(&why, now);
            }
        }
        self.mlr_actions();
    }

    /// Carry out the link's actions, hand its events to the core, write.
    pub(super) fn mlr_actions(&mut self) {
        while let Some(a) = self.mlr.poll_action() {
            match a {
                // From the CN address it binds as (mlrd refuses a CnBind
                // whose address is not the connection's source).
                Action::Connect(to) => match mlrp::Conn::connect(to, Some(self.me.ip)) {
                    Ok(c) => {
                        log::debug!(target: "mlrp", "connecting to MLR @ {to}");
                        self.mlr_conn = Some(c);
                    }
                    Err(e) => self
                        .mlr
                        .handle_closed(&format!("connect: {e}"), Instant::now()),
                },
                Action::Close { last_words } => {
                    if let Some(mut c) = self.mlr_conn.take() {
                        c.queue().extend_from_slice(&last_words);
                        c.close();
                    }
                }
            }
        }
        self.mlr_events();
        self.mlr_flush();
    }

    /// Write what the link has to say.
    pub(super) fn mlr_flush(&mut self) {
        let Some(c) = self.mlr_conn.as_mut() else {
            return;
        };
        self.mlr.poll_transmit(c.queue());
        if let Err(e) = c.flush() {
            self.mlr
                .handle_closed(&format!("write: {e}"), Instant::now());
            self.mlr_actions();
        }
    }

    fn mlr_events(&mut self) {
        while let Some(ev) = self.mlr.poll_event() {
            let now = Instant::now();
            match ev {
                Event::Bound {
                    again,
                    register,
                    epoch,
                } => {
                    if let Some(from) = self.last_register.filter(|r| *r != register) {
                        self.emit(&CnEvent::MlrFailover { from, to: register });
                    }
                    self.last_register = Some(register);
                    self.emit(&CnEvent::MlrUp { register, again });
                    // Start-up reports its own bind and resynchronises
                    // once the detection services run.
                    if self.startup_done {
                        log::info!(target: "cn", "+ Binding CN to the mobile network [{}]: Bind accepted (re-established link) by MLR @ {register}{}.", self.cfg.network_name,
                            if epoch > 0 { format!(", epoch {epoch}") } else { String::new() });
                        let left = std::mem::take(&mut self.leftovers);
                        self.core.mlr_bound(&left);
                    }
                }
                Event::Refused { why } => {
                    log::error!(target: "cn", "the MLR refused the bind: {why}");
                }
                Event::Down {
                    why,
                    was_bound,
                    retry_in,
                    next,
                } => {
                    if was_bound {
                        self.emit(&CnEvent::MlrDown {
                            register: self.last_register.unwrap_or_else(|| self.mlr.register()),
                            why: why.clone(),
                            retry_in,
                        });
                        log::warn!(target: "mlrp", "lost the MLR link: {why}");
                        self.core.mlr_lost(now);
                    }
                    if self.startup_done || self.mlr.registers().len() > 1 {
                        if retry_in.is_zero() {
                            log::warn!(target: "mlrp", "MLR unreachable ({why}); failing over to MLR @ {next}");
                        } else {
                            log::warn!(target: "mlrp", "MLR unreachable ({why}); serving local stations, retrying MLR @ {next} in {}s", retry_in.as_secs());
                        }
                    }
                }
                Event::Answer { tag, msg } => match tag {
                    MlrTag::Core(t) => self.core.mlr_answer(t, translate::answer(msg), now),
                    MlrTag::Conflicts => {
                        self.conflict_list = Some(match msg {
                            Message::CnList(l) => l.entries,
                            _ => Vec::new(),
                        });
                    }
                },
                Event::Request { id, msg } => {
                    let reply = self.on_pushed(msg, "MLR");
                    if let Err(e) = self.mlr.reply(id, &reply) {
                        log::warn!(target: "mlrp", "cannot reply to the MLR: {e}");
                    }
                }
                Event::Unusable(e) => {
                    log::warn!(target: "mlrp", "MLR sent something unusable: {e}")
                }
            }
        }
    }
}
