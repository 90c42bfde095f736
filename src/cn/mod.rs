//! The correspondent node's sans-IO core: station table, MLR session and
//! handover state machine. The tmipd event loop feeds it events and carries
//! out the actions it returns.
