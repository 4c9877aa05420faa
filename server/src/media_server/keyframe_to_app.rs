//! Lets a browser's keyframe requests (PLI, FIR) reach the engine.
//!
//! `rtc`'s interceptor chain ends inbound RTCP at its terminus: reports,
//! NACKs and congestion feedback are the interceptors' business. A media
//! server must see keyframe requests, though, to relay them to the
//! publisher behind the stream (throttled by the forwarding core), so this
//! interceptor, last in the chain, marks them for delivery to the
//! application and passes everything else through untouched.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::shared::error::Error;
use sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Default)]
pub(super) struct KeyframeRequestsToApplication {
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

/// Whether a compound RTCP packet carries a keyframe request.
fn asks_for_keyframe(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    packets.iter().any(|packet| {
        let any = packet.as_any();
        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
    })
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut packet: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(rtcp) = &packet.message.packet {
            if asks_for_keyframe(rtcp) {
                packet.message.add(Attribute::DeliverToApplication);
            }
        }
        // Every packet goes on up the chain: one not queued here is lost.
        self.inbound.push_back(packet);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.inbound.pop_front()
    }

    fn handle_write(&mut self, packet: TaggedPacket) -> Result<(), Error> {
        self.outbound.push_back(packet);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.outbound.pop_front()
    }

    fn close(&mut self) -> Result<(), Error> {
        self.inbound.clear();
        self.outbound.clear();
        Ok(())
    }
}

impl Interceptor for KeyframeRequestsToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::{TransportContext, TransportProtocol};

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: "127.0.0.1:5000".parse().unwrap(),
                peer_addr: "127.0.0.1:6000".parse().unwrap(),
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: Packet::Rtcp(packets).into(),
        }
    }

    #[test]
    fn keyframe_requests_reach_the_engine_and_reports_stay_in_the_chain() {
        let mut interceptor = KeyframeRequestsToApplication::default();
        interceptor
            .handle_read(inbound(vec![Box::new(PictureLossIndication::default())]))
            .unwrap();
        interceptor
            .handle_read(inbound(vec![Box::new(ReceiverReport::default())]))
            .unwrap();
        let pli = interceptor.poll_read().unwrap();
        assert!(pli.message.has(&Attribute::DeliverToApplication));
        let report = interceptor.poll_read().unwrap();
        assert!(!report.message.has(&Attribute::DeliverToApplication));
        interceptor
            .handle_write(inbound(vec![Box::new(ReceiverReport::default())]))
            .unwrap();
        assert!(interceptor.poll_write().is_some(), "writes pass through");
    }
}
