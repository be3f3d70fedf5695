//! `threshold`: a rule, not a statistic. Every selected record whose field compares with the
//! constant as configured is a finding (e.g. a call using more than 2,000,000 gas); nothing is
//! learned, so there is no state to save.

use tripwire_schema::LogRecord;

use super::stats::parse_amount;
use super::{series_label, Base, Finding, ThresholdParams};

pub(crate) struct Threshold {
    p: ThresholdParams,
}

impl Threshold {
    pub(crate) fn new(p: ThresholdParams) -> Threshold {
        Threshold { p }
    }

    pub(crate) fn observe_log(&self, base: &Base<'_>, log: &LogRecord, out: &mut Vec<Finding>) {
        let Some(ev) = &log.event else { return };
        let Some(value) = ev.params.get(&self.p.field).and_then(parse_amount) else {
            return;
        };
        if !self.p.op.holds(value, self.p.value) {
            return;
        }
        let mut f = base.at_log(log, &series_label(log, None));
        f.observed = value;
        f.expected = self.p.value;
        f.score = value;
        f.score_name = "threshold";
        f.summary = format!(
            "{} {} = {} {} {}",
            ev.name,
            self.p.field,
            value,
            self.p.op.as_str(),
            self.p.value
        );
        out.push(f);
    }
}
