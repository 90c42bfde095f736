//! Local delivery: the station is at its parent CN, so no tunnel is
//! needed — its /30 is reached through a host route on `mobile_if`. This
//! backend only counts the stations delivered locally (the seed's "local
//! loopback tunnels"), bounded like the other tables.

/// How many stations the seed allowed to be delivered locally.
pub const LOCAL_CAPACITY: usize = 1000;

#[derive(Debug, Default)]
pub struct LocalDelivery {
    stations: usize,
}

impl LocalDelivery {
    pub fn capacity(&self) -> usize {
        LOCAL_CAPACITY
    }

    /// Counts one more locally delivered station; false when full.
    pub fn acquire(&mut self) -> bool {
        if self.stations >= LOCAL_CAPACITY {
            return false;
        }
        self.stations += 1;
        true
    }

    pub fn release(&mut self) {
        self.stations = self.stations.saturating_sub(1);
    }

    pub fn in_use(&self) -> usize {
        self.stations
    }
}
