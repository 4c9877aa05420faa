//! Lets a browser's keyframe requests (PLI, FIR) and reception reports
//! reach the engine.
//!
//! `rtc`'s interceptor chain ends inbound RTCP at its terminus: reports,
//! NACKs and congestion feedback are the interceptors' business. A media
//! server must see keyframe requests, though, to relay them to the
//! publisher behind the stream (throttled by the forwarding core), and the
//! loss each browser reports on what it receives, to hold its simulcast
//! layers down while its link is congested. So this interceptor, last in
//! the chain, marks those for delivery to the application and passes
//! everything else through untouched.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::shared::error::Error;
use sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Default)]
pub(super) struct FeedbackToApplication {
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

/// The reception report blocks of one RTCP packet (a receiver's or a
/// sender's report; none for anything else).
fn reception_reports(packet: &dyn rtc::rtcp::Packet) -> &[ReceptionReport] {
    let any = packet.as_any();
    if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        &rr.reports
    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
        &sr.reports
    } else {
        &[]
    }
}

/// Whether a compound RTCP packet carries a keyframe request or a
/// reception report.
fn for_the_engine(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    let asks_for_keyframe = packets.iter().any(|packet| {
        let any = packet.as_any();
        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
    });
    asks_for_keyframe || highest_loss(packets).is_some()
}

/// The highest fraction lost (out of 256) any reception report of
/// `packets` gives, if they carry any.
pub(super) fn highest_loss(packets: &[Box<dyn rtc::rtcp::Packet>]) -> Option<u8> {
    packets
        .iter()
        .flat_map(|packet| reception_reports(packet.as_ref()))
        .map(|block| block.fraction_lost)
        .max()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut packet: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(rtcp) = &packet.message.packet {
            if for_the_engine(rtcp) {
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

impl Interceptor for FeedbackToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn report(fraction_lost: u8) -> ReceiverReport {
        ReceiverReport {
            reports: vec![ReceptionReport {
                ssrc: 7,
                fraction_lost,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn keyframe_requests_and_loss_reach_the_engine_and_empty_reports_stay_in_the_chain() {
        let mut interceptor = FeedbackToApplication::default();
        interceptor
            .handle_read(inbound(vec![Box::new(PictureLossIndication::default())]))
            .unwrap();
        interceptor
            .handle_read(inbound(vec![Box::new(ReceiverReport::default())]))
            .unwrap();
        interceptor
            .handle_read(inbound(vec![Box::new(report(0)), Box::new(report(40))]))
            .unwrap();
        let pli = interceptor.poll_read().unwrap();
        assert!(pli.message.has(&Attribute::DeliverToApplication));
        let empty = interceptor.poll_read().unwrap();
        assert!(!empty.message.has(&Attribute::DeliverToApplication));
        let loss = interceptor.poll_read().unwrap();
        assert!(loss.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &loss.message.packet else {
            panic!("an RTCP packet");
        };
        assert_eq!(highest_loss(packets), Some(40));
        assert_eq!(
            highest_loss(&[Box::new(PictureLossIndication::default())]),
            None
        );
        interceptor
            .handle_write(inbound(vec![Box::new(ReceiverReport::default())]))
            .unwrap();
        assert!(interceptor.poll_write().is_some(), "writes pass through");
    }
}
