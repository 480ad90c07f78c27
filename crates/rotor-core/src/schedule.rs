//! Rotation schedules: the `RotationRules` of the AWS API, parsed into a [`Schedule`]
//! that says when the next rotation window opens and closes.
//!
//! This module owns the grammar and the arithmetic; it does no I/O and reads no clock
//! (the caller passes `now`). It follows [RotationRulesType] and the user guide's
//! [rotation schedules]:
//!
//! - `AutomaticallyAfterDays` (1–1000) or `ScheduleExpression`, exactly one of them;
//! - `rate(N hours)` (4–23) and `rate(N days)` (1–1000), units singular or plural;
//! - `cron(Minutes Hours Day-of-month Month Day-of-week Year)` in UTC, where minutes
//!   must be `0` (windows open on the hour) and the year must be `*` (Secrets Manager
//!   does not support schedules more than a year apart), so both are refused otherwise;
//! - `Duration`, the window's length, `1h` to `24h`.
//!
//! [RotationRulesType]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotationRulesType.html
//! [rotation schedules]: https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_schedule.html
//!
//! # Cron fields
//!
//! | field        | values            | special characters     |
//! |--------------|-------------------|------------------------|
//! | minutes      | `0` only          |                        |
//! | hours        | 0–23              | `, - * /`              |
//! | day-of-month | 1–31              | `, - * ? / L L-n W LW` |
//! | month        | 1–12 or `JAN–DEC` | `, - * /`              |
//! | day-of-week  | 1–7 or `SUN–SAT`  | `, - * ? / L #`        |
//! | year         | `*` only          |                        |
//!
//! Exactly one of day-of-month and day-of-week is `?`. `L` in day-of-month is the
//! month's last day and `L-3` three days before it; `15W` is the weekday nearest the
//! 15th within the same month, `LW` the month's last weekday. In day-of-week, 1 is
//! Sunday, `6L` is the month's last Friday, `6#3` its third Friday and `L` alone is
//! Saturday. `L`, `W` and `#` stand alone, never in a list. Names are
//! case-insensitive. Ranges must not run backwards (`FRI-MON` is refused).
//!
//! # What `parse` refuses
//!
//! Beyond the grammar, it refuses what would make a rotation happen more often than
//! Secrets Manager allows or windows overlap:
//!
//! - two hours of the hours field less than 4 hours apart, counting the gap from the
//!   last hour of a day to the first of the next (`cron(0 1,22 * * ? *)` is refused,
//!   even where the day fields would never match two days in a row);
//! - a `Duration` longer than the hours of `rate(N hours)`, one that would run a cron
//!   window into the next UTC day (`cron(0 22 ...)` with `3h`), or into the next
//!   window of the same day;
//! - a cron expression that matches no date at all (`cron(0 0 30 2 ? *)`).
//!
//! Errors are `ValidationException` where a field breaks the API's length, pattern or
//! range constraints, and `InvalidParameterException` for everything else; the
//! message names the field and says what is wrong.
//!
//! # When the next window is
//!
//! [`Schedule::next_window`] takes `last`, the last rotation (or, when the secret was
//! never rotated, when rotation was configured), and `now`, and answers the window in
//! which the next rotation should run. The window always starts strictly after `last`
//! and always ends after `now`: a window that was missed while Rotor was down is
//! returned while it is still open (its start then lies before `now`), and once it has
//! closed the answer moves on:
//!
//! - `rate(N days)` / `AutomaticallyAfterDays`: the window opens at midnight UTC, N
//!   days after the date of `last`. An overdue rotation runs in the next daily window
//!   still open (today's if it has not closed, else tomorrow's) rather than N more
//!   days later, since the point of the interval is the secret's age.
//! - `rate(N hours)`: the window opens on the hour, N hours after the hour of `last`
//!   (`last` 13:05, `rate(6 hours)`: 19:00). An overdue rotation runs in the window
//!   opening at the current hour.
//! - `cron(...)`: the first match after `last` whose window has not closed; the user
//!   picked these times, so a closed window is not made up outside them.
//!
//! Without a `Duration` a window lasts one hour for a schedule in hours (`rate(N
//! hours)`, or a cron expression with more than one hour) and otherwise until the end
//! of the UTC day it opens in.
//!
//! ```
//! use rotor_core::schedule::{RotationRules, Schedule};
//!
//! let rules = RotationRules {
//!     schedule_expression: Some("cron(0 16 L * ? *)".into()),
//!     ..RotationRules::default()
//! };
//! let schedule = Schedule::parse(&rules).unwrap();
//! let last = "2026-02-10T09:30:00Z".parse().unwrap();
//! let window = schedule.next_window(last, last).unwrap();
//! assert_eq!(window.start.to_rfc3339(), "2026-02-28T16:00:00+00:00");
//! assert_eq!(window.end.to_rfc3339(), "2026-03-01T00:00:00+00:00");
//! ```

use std::fmt;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most days `AutomaticallyAfterDays` and `rate(N days)` may span.
pub const MAX_DAYS: i64 = 1000;
/// Fewest hours between rotations.
pub const MIN_HOURS_BETWEEN_ROTATIONS: i64 = 4;
/// Most hours `rate(N hours)` may span; a day or more is written in days.
pub const MAX_RATE_HOURS: i64 = 23;
/// Longest rotation window, in hours.
pub const MAX_WINDOW_HOURS: i64 = 24;
/// Longest `ScheduleExpression`.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// Days in the Gregorian calendar's 400-year cycle (a whole number of weeks): a cron
/// expression that matches anywhere matches within any span of this many days.
const GREGORIAN_CYCLE_DAYS: u64 = 146_097;

/// `RotationRules` as the AWS API carries them; which fields must be set, and how,
/// is [`Schedule::parse`]'s business.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(extend("oneOf" = [
    {"required": ["AutomaticallyAfterDays"], "properties": {"AutomaticallyAfterDays": {"type": "integer"}, "ScheduleExpression": {"type": "null"}}},
    {"required": ["ScheduleExpression"], "properties": {"ScheduleExpression": {"type": "string"}, "AutomaticallyAfterDays": {"type": "null"}}},
]))]
pub struct RotationRules {
    /// Days between rotations, 1–1000: the same schedule as `rate(N days)`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::number::optional"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub automatically_after_days: Option<i64>,
    /// The window's length in hours, like `"3h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([1-9]|1[0-9]|2[0-4])h$"))]
    pub duration: Option<String>,
    /// A `rate()` or `cron()` expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub schedule_expression: Option<String>,
}

/// A span of time in which a rotation should run: from `start`, before `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the window opens.
    pub start: DateTime<Utc>,
    /// When it closes; always after `start`.
    pub end: DateTime<Utc>,
}

impl Window {
    /// Whether `at` lies in the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

/// A parsed and validated rotation schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    recurrence: Recurrence,
    /// The `Duration` given, in hours; `None` for the default window.
    window_hours: Option<i64>,
}

/// How often windows open.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recurrence {
    /// `AutomaticallyAfterDays`: `rate(N days)`, kept apart to echo it back as given.
    AfterDays(i64),
    /// `rate(N hours)`.
    Hours(i64),
    /// `rate(N days)`.
    Days(i64),
    /// `cron(...)`.
    Cron(Cron),
}

impl Schedule {
    /// Parses and validates `rules`.
    pub fn parse(rules: &RotationRules) -> Result<Schedule> {
        let recurrence = match (
            rules.automatically_after_days,
            rules.schedule_expression.as_deref(),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_parameter(
                    "RotationRules: give AutomaticallyAfterDays or ScheduleExpression, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid_parameter(
                    "RotationRules: give AutomaticallyAfterDays or ScheduleExpression",
                ));
            }
            (Some(days), None) => {
                if !(1..=MAX_DAYS).contains(&days) {
                    return Err(Error::invalid_parameter(format!(
                        "RotationRules.AutomaticallyAfterDays must be within 1-{MAX_DAYS}."
                    )));
                }
                Recurrence::AfterDays(days)
            }
            (None, Some(expression)) => parse_expression(expression)?,
        };
        let window_hours = rules.duration.as_deref().map(parse_duration).transpose()?;
        if let Some(hours) = window_hours {
            match &recurrence {
                Recurrence::Hours(rate) if hours > *rate => {
                    return Err(Error::invalid_parameter(format!(
                        "Duration: a {hours}h window is longer than the {rate} hours between rotations"
                    )));
                }
                Recurrence::Cron(cron) => cron.check_window(hours)?,
                _ => {}
            }
        }
        Ok(Schedule {
            recurrence,
            window_hours,
        })
    }

    /// The window of the next rotation after `last`, as of `now`; see the module
    /// documentation for how a missed window is handled.
    ///
    /// `None` when no window can be found: past the last date the calendar can
    /// represent. Validation guarantees every parsed schedule fires again otherwise.
    pub fn next_window(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> Option<Window> {
        match &self.recurrence {
            Recurrence::Hours(hours) => {
                let due = self.window_at(add(floor_hour(last)?, Duration::hours(*hours))?)?;
                if due.end > now {
                    return Some(due);
                }
                // Overdue: the window opening at the current hour is still open.
                self.window_at(floor_hour(now)?)
            }
            Recurrence::Days(days) | Recurrence::AfterDays(days) => {
                let due_date = last
                    .date_naive()
                    .checked_add_days(Days::new(days.unsigned_abs()))?;
                let due = self.window_at(midnight(due_date))?;
                if due.end > now {
                    return Some(due);
                }
                // Overdue: today's window if it is still open, else tomorrow's.
                let today = self.window_at(midnight(now.date_naive()))?;
                if today.end > now {
                    return Some(today);
                }
                self.window_at(midnight(now.date_naive().succ_opt()?))
            }
            Recurrence::Cron(cron) => {
                let first = self.window_at(cron.next_match(last)?)?;
                if first.end > now {
                    return Some(first);
                }
                // Missed and closed. Windows last at most a day, so the first one still
                // open opens after now - 24h; matches are hours apart, so this loop
                // runs a few times at most before a match passes `now`.
                let mut from = match now.checked_sub_signed(Duration::hours(MAX_WINDOW_HOURS)) {
                    Some(day_before) => first.start.max(day_before),
                    None => first.start,
                };
                loop {
                    let window = self.window_at(cron.next_match(from)?)?;
                    if window.end > now {
                        return Some(window);
                    }
                    from = window.start;
                }
            }
        }
    }

    /// The rules as the user gave them, normalised (canonical expression, `Nh`
    /// duration), to echo in `DescribeSecret`. Parsing them again gives this schedule.
    pub fn rules(&self) -> RotationRules {
        let duration = self.window_hours.map(|hours| format!("{hours}h"));
        match &self.recurrence {
            Recurrence::AfterDays(days) => RotationRules {
                automatically_after_days: Some(*days),
                duration,
                schedule_expression: None,
            },
            _ => RotationRules {
                automatically_after_days: None,
                duration,
                schedule_expression: Some(self.to_string()),
            },
        }
    }

    /// Whether this is a schedule in hours, whose default window lasts one hour.
    fn is_hourly(&self) -> bool {
        match &self.recurrence {
            Recurrence::Hours(_) => true,
            Recurrence::Cron(cron) => cron.hours.count_ones() > 1,
            Recurrence::Days(_) | Recurrence::AfterDays(_) => false,
        }
    }

    /// The window opening at `start`.
    fn window_at(&self, start: DateTime<Utc>) -> Option<Window> {
        let end = match self.window_hours {
            Some(hours) => add(start, Duration::hours(hours))?,
            None if self.is_hourly() => add(start, Duration::hours(1))?,
            None => midnight(start.date_naive().succ_opt()?),
        };
        Some(Window { start, end })
    }
}

/// The canonical `ScheduleExpression`; `AutomaticallyAfterDays` shows as its `rate()`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.recurrence {
            Recurrence::Hours(hours) => write!(f, "rate({hours} hours)"),
            Recurrence::Days(1) | Recurrence::AfterDays(1) => write!(f, "rate(1 day)"),
            Recurrence::Days(days) | Recurrence::AfterDays(days) => write!(f, "rate({days} days)"),
            Recurrence::Cron(cron) => write!(f, "cron({})", cron.fields.join(" ")),
        }
    }
}

/// Parses `Duration` into hours: the API's pattern (`[0-9h]+`, 2–3 characters), then
/// `Nh` with N from 1 to 24.
fn parse_duration(text: &str) -> Result<i64> {
    if !(2..=3).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit() || b == b'h') {
        return Err(Error::validation(format!(
            "Duration: must be a number of hours like \"3h\", got {text:?}"
        )));
    }
    let hours = text
        .strip_suffix('h')
        .and_then(|digits| number(digits).ok())
        .ok_or_else(|| {
            Error::invalid_parameter(format!(
                "Duration: must be a number of hours like \"3h\", got {text:?}"
            ))
        })?;
    if !(1..=MAX_WINDOW_HOURS).contains(&i64::from(hours)) {
        return Err(Error::invalid_parameter(format!(
            "Duration: a window lasts 1 to {MAX_WINDOW_HOURS} hours, got {text}"
        )));
    }
    Ok(i64::from(hours))
}

/// Parses a `ScheduleExpression`: the API's pattern, then `rate()` or `cron()`.
fn parse_expression(text: &str) -> Result<Recurrence> {
    if text.is_empty() || text.len() > MAX_EXPRESSION_LEN {
        return Err(Error::validation(format!(
            "ScheduleExpression: must be 1 to {MAX_EXPRESSION_LEN} characters long"
        )));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "()#?*-/, ".contains(*c)))
    {
        return Err(Error::validation(format!(
            "ScheduleExpression: the character {c:?} is not allowed"
        )));
    }
    if let Some(inner) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
        parse_rate(inner)
    } else if let Some(inner) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
        Ok(Recurrence::Cron(Cron::parse(inner)?))
    } else {
        Err(invalid_expression(format!(
            "expected rate(...) or cron(...), got {text:?}"
        )))
    }
}

/// Parses the inside of `rate(...)`.
fn parse_rate(inner: &str) -> Result<Recurrence> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err(invalid_expression(format!(
            "rate() takes a value and a unit, like rate(10 days), got rate({inner})"
        )));
    };
    let value = number(value).map_err(|problem| invalid_expression(format!("rate() {problem}")))?;
    let value = i64::from(value);
    match unit {
        "hour" | "hours" => {
            if !(MIN_HOURS_BETWEEN_ROTATIONS..=MAX_RATE_HOURS).contains(&value) {
                return Err(invalid_expression(format!(
                    "rate() takes {MIN_HOURS_BETWEEN_ROTATIONS} to {MAX_RATE_HOURS} hours, got {value}"
                )));
            }
            Ok(Recurrence::Hours(value))
        }
        "day" | "days" => {
            if !(1..=MAX_DAYS).contains(&value) {
                return Err(invalid_expression(format!(
                    "rate() takes 1 to {MAX_DAYS} days, got {value}"
                )));
            }
            Ok(Recurrence::Days(value))
        }
        other => Err(invalid_expression(format!(
            "rate() unit must be hours or days, got {other:?}"
        ))),
    }
}

/// An `InvalidParameterException` about the `ScheduleExpression`.
fn invalid_expression(problem: String) -> Error {
    Error::invalid_parameter(format!("ScheduleExpression: {problem}"))
}

/// A parsed `cron()` expression. Sets of values are bit sets: bit `n` set, `n` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    /// The six fields as given, upper-cased, for display.
    fields: Vec<String>,
    /// Hours the window opens at (bits 0–23).
    hours: u64,
    /// Months that match (bits 1–12).
    months: u64,
    /// Which days of a matching month match.
    days: DaySpec,
}

/// The day rule: day-of-month or day-of-week, whichever is not `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaySpec {
    /// Days of the month (bits 1–31).
    MonthDays(u64),
    /// `L`, `L-n`: `n` days before the month's last day.
    LastDay(u32),
    /// `nW`: the weekday (Monday–Friday) nearest day `n`, within the month.
    NearestWeekday(u32),
    /// `LW`: the month's last weekday.
    LastWeekday,
    /// Days of the week (bits 1–7, 1 = Sunday).
    WeekDays(u64),
    /// `dL`: the month's last day `d` of the week.
    LastOfWeekday(u32),
    /// `d#n`: the month's `n`-th day `d` of the week.
    NthWeekday {
        /// 1 = Sunday … 7 = Saturday.
        weekday: u32,
        /// 1–5.
        nth: u32,
    },
}

/// The range and names of one cron field.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names of the values from `min` on, upper case.
    names: &'static [&'static str],
}

const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Cron {
    /// Parses the inside of `cron(...)` and checks it against Secrets Manager's limits.
    fn parse(inner: &str) -> Result<Cron> {
        let fields: Vec<String> = inner
            .split_whitespace()
            .map(|f| f.to_ascii_uppercase())
            .collect();
        let [minutes, hours, day_of_month, month, day_of_week, year] = &fields[..] else {
            return Err(invalid_expression(format!(
                "cron() takes 6 fields (minutes hours day-of-month month day-of-week year), got {}",
                fields.len()
            )));
        };
        if minutes != "0" {
            return Err(invalid_expression(format!(
                "cron() minutes must be 0, since rotation windows open on the hour, got {minutes:?}"
            )));
        }
        if year != "*" {
            return Err(invalid_expression(format!(
                "cron() year must be *, since Secrets Manager does not support schedules more than a year apart, got {year:?}"
            )));
        }
        let hours = HOURS
            .set(hours)
            .map_err(|p| field_error(&HOURS, hours, p))?;
        let months = MONTH
            .set(month)
            .map_err(|p| field_error(&MONTH, month, p))?;
        let by_month_day = parse_day_of_month(day_of_month)
            .map_err(|p| field_error(&DAY_OF_MONTH, day_of_month, p))?;
        let by_week_day = parse_day_of_week(day_of_week)
            .map_err(|p| field_error(&DAY_OF_WEEK, day_of_week, p))?;
        let days = match (by_month_day, by_week_day) {
            (Some(days), None) | (None, Some(days)) => days,
            (Some(_), Some(_)) => {
                return Err(invalid_expression(
                    "cron() needs ? in day-of-month or day-of-week, got neither".into(),
                ));
            }
            (None, None) => {
                return Err(invalid_expression(
                    "cron() needs ? in one of day-of-month and day-of-week, got it in both".into(),
                ));
            }
        };
        let cron = Cron {
            hours,
            months,
            days,
            fields,
        };
        cron.check_frequency()?;
        if cron.next_match(DateTime::UNIX_EPOCH).is_none() {
            return Err(invalid_expression(format!(
                "cron({}) never matches a date",
                cron.fields.join(" ")
            )));
        }
        Ok(cron)
    }

    /// The hours the window opens at, in order.
    fn hour_list(&self) -> Vec<u32> {
        (0..24).filter(|h| self.hours & (1 << h) != 0).collect()
    }

    /// Refuses hours less than 4 apart, across midnight too.
    fn check_frequency(&self) -> Result<()> {
        let hours = self.hour_list();
        let gaps = hours.windows(2).map(|w| (w[0], w[1], w[1] - w[0]));
        let wrap = match (hours.first(), hours.last()) {
            (Some(&first), Some(&last)) if hours.len() > 1 => {
                Some((last, first, first + 24 - last))
            }
            _ => None,
        };
        for (a, b, gap) in gaps.chain(wrap) {
            if i64::from(gap) < MIN_HOURS_BETWEEN_ROTATIONS {
                let next_day = if b < a { " the next day" } else { "" };
                return Err(invalid_expression(format!(
                    "cron() opens windows at {a:02}:00 and {b:02}:00{next_day}, only {gap}h apart; \
                     Secrets Manager rotates at most every {MIN_HOURS_BETWEEN_ROTATIONS} hours"
                )));
            }
        }
        Ok(())
    }

    /// Refuses a `Duration` that runs a window into the next UTC day or the next window.
    fn check_window(&self, window_hours: i64) -> Result<()> {
        let hours = self.hour_list();
        for &h in &hours {
            if i64::from(h) + window_hours > 24 {
                return Err(Error::invalid_parameter(format!(
                    "Duration: a {window_hours}h window opening at {h:02}:00 would run into the next UTC day"
                )));
            }
        }
        for pair in hours.windows(2) {
            if window_hours > i64::from(pair[1] - pair[0]) {
                return Err(Error::invalid_parameter(format!(
                    "Duration: a {window_hours}h window opening at {:02}:00 would run into the next one at {:02}:00",
                    pair[0], pair[1]
                )));
            }
        }
        Ok(())
    }

    /// The first time the expression matches strictly after `after`, searching one
    /// Gregorian cycle ahead (which finds a match if there is any at all).
    fn next_match(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut date = after.date_naive();
        // Matches fall on whole hours: the first one after `after` is in a later hour.
        let mut from_hour = after.hour() + 1;
        let search_end = date
            .checked_add_days(Days::new(GREGORIAN_CYCLE_DAYS))
            .unwrap_or(NaiveDate::MAX);
        while date <= search_end {
            if self.months & (1 << date.month()) == 0 {
                date = first_of_next_month(date)?;
                from_hour = 0;
                continue;
            }
            if self.days.matches(date) {
                let later_hours = self.hours >> from_hour << from_hour;
                if later_hours != 0 {
                    return Some(
                        date.and_hms_opt(later_hours.trailing_zeros(), 0, 0)?
                            .and_utc(),
                    );
                }
            }
            date = date.succ_opt()?;
            from_hour = 0;
        }
        None
    }
}

/// An `InvalidParameterException` about one cron field.
fn field_error(field: &Field, text: &str, problem: String) -> Error {
    invalid_expression(format!("cron() {} field {text:?}: {problem}", field.name))
}

/// Parses day-of-month; `None` for `?`.
fn parse_day_of_month(text: &str) -> std::result::Result<Option<DaySpec>, String> {
    if text == "?" {
        return Ok(None);
    }
    if text.contains(',') && text.contains(['L', 'W']) {
        return Err("L and W cannot be used in a list".into());
    }
    let spec = if text == "L" {
        DaySpec::LastDay(0)
    } else if text == "LW" {
        DaySpec::LastWeekday
    } else if let Some(offset) = text.strip_prefix("L-") {
        let offset = number(offset)?;
        if !(1..=30).contains(&offset) {
            return Err(format!("L-n takes n from 1 to 30, got {offset}"));
        }
        DaySpec::LastDay(offset)
    } else if let Some(day) = text.strip_suffix('W') {
        DaySpec::NearestWeekday(DAY_OF_MONTH.value(day)?)
    } else {
        DaySpec::MonthDays(DAY_OF_MONTH.set(text)?)
    };
    Ok(Some(spec))
}

/// Parses day-of-week; `None` for `?`.
fn parse_day_of_week(text: &str) -> std::result::Result<Option<DaySpec>, String> {
    if text == "?" {
        return Ok(None);
    }
    if text.contains(',') && text.contains(['L', '#']) {
        return Err("L and # cannot be used in a list".into());
    }
    let spec = if text == "L" {
        // `L` alone is the last day of the week.
        DaySpec::WeekDays(1 << DAY_OF_WEEK.max)
    } else if let Some((weekday, nth)) = text.split_once('#') {
        let weekday = DAY_OF_WEEK.value(weekday)?;
        let nth = number(nth)?;
        if !(1..=5).contains(&nth) {
            return Err(format!("# takes an occurrence from 1 to 5, got {nth}"));
        }
        DaySpec::NthWeekday { weekday, nth }
    } else if let Some(weekday) = text.strip_suffix('L') {
        DaySpec::LastOfWeekday(DAY_OF_WEEK.value(weekday)?)
    } else {
        DaySpec::WeekDays(DAY_OF_WEEK.set(text)?)
    };
    Ok(Some(spec))
}

impl Field {
    /// One value: a number in range or a name.
    fn value(&self, text: &str) -> std::result::Result<u32, String> {
        if let Some(i) = self.names.iter().position(|name| *name == text) {
            return Ok(self.min + i as u32);
        }
        let value = number(text)?;
        if !(self.min..=self.max).contains(&value) {
            return Err(format!("{value} is out of range {}-{}", self.min, self.max));
        }
        Ok(value)
    }

    /// A `,`-separated list of `*`, `n` or `a-b`, each optionally `/step`
    /// (`n/step` runs from `n` to the field's maximum), as a bit set.
    fn set(&self, text: &str) -> std::result::Result<u64, String> {
        let mut bits = 0;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((low, high)) = range.split_once('-') {
                let (low, high) = (self.value(low)?, self.value(high)?);
                if low > high {
                    return Err(format!("the range {range} runs backwards"));
                }
                (low, high)
            } else {
                let value = self.value(range)?;
                (value, if step.is_some() { self.max } else { value })
            };
            let step = match step {
                None => 1,
                Some(step) => {
                    let step = number(step)?;
                    if !(1..=self.max).contains(&step) {
                        return Err(format!("the step {step} is out of range 1-{}", self.max));
                    }
                    step
                }
            };
            for value in (low..=high).step_by(step as usize) {
                bits |= 1 << value;
            }
        }
        Ok(bits)
    }
}

impl DaySpec {
    /// Whether `date` is one of the days this rule picks.
    fn matches(self, date: NaiveDate) -> bool {
        let day = date.day();
        let month_len = days_in_month(date.year(), date.month());
        // 1 = Sunday … 7 = Saturday.
        let weekday = date.weekday().number_from_sunday();
        let weekday_of = |other_day: u32| {
            (i64::from(weekday) - 1 + i64::from(other_day) - i64::from(day)).rem_euclid(7) + 1
        };
        match self {
            DaySpec::MonthDays(bits) => bits & (1 << day) != 0,
            DaySpec::LastDay(offset) => offset < month_len && day == month_len - offset,
            DaySpec::NearestWeekday(target) => {
                let nearest = match weekday_of(target) {
                    // Saturday: Friday before, unless that leaves the month.
                    7 if target == 1 => 3,
                    7 => target - 1,
                    // Sunday: Monday after, unless that leaves the month.
                    1 if target == month_len => target - 2,
                    1 => target + 1,
                    _ => target,
                };
                target <= month_len && day == nearest
            }
            DaySpec::LastWeekday => {
                let last = match weekday_of(month_len) {
                    7 => month_len - 1,
                    1 => month_len - 2,
                    _ => month_len,
                };
                day == last
            }
            DaySpec::WeekDays(bits) => bits & (1 << weekday) != 0,
            DaySpec::LastOfWeekday(target) => weekday == target && day + 7 > month_len,
            DaySpec::NthWeekday {
                weekday: target,
                nth,
            } => weekday == target && (day - 1) / 7 + 1 == nth,
        }
    }
}

/// A whole number written in decimal digits only.
fn number(text: &str) -> std::result::Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a number"));
    }
    text.parse().map_err(|_| format!("{text} is too large"))
}

/// `t + d`, `None` past the calendar's end.
fn add(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    t.checked_add_signed(d)
}

/// Midnight UTC at the start of `date`.
fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

/// `t` with minutes, seconds and fractions cut off.
fn floor_hour(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(t.date_naive().and_hms_opt(t.hour(), 0, 0)?.and_utc())
}

/// The first day of the month after `date`'s.
fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

/// Days in `month` of `year`.
fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Sets `meta`'s next rotation after one (or a configuration) at `last`: the next
/// window's start, and when inside it the scheduler starts the rotation, picked with
/// `random_below(n)` (a number below `n`) so that secrets sharing a schedule do not
/// all rotate at its first second. It leaves the last tenth of the window for the
/// run. Disabled rotation, or no rules, clears both.
pub fn reschedule(
    meta: &mut crate::model::RotationMeta,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    random_below: impl FnOnce(usize) -> usize,
) -> Result<()> {
    let rules = match (&meta.rules, meta.enabled) {
        (Some(rules), true) => rules,
        _ => {
            meta.next_rotation = None;
            meta.due = None;
            return Ok(());
        }
    };
    let rules: RotationRules = serde_json::from_str(rules)
        .map_err(|_| Error::internal("stored rotation rules are not valid JSON"))?;
    match Schedule::parse(&rules)?.next_window(last, now) {
        Some(window) => {
            let span = (window.end - window.start).num_milliseconds() * 9 / 10;
            let offset = if span > 0 {
                random_below(span as usize) as i64
            } else {
                0
            };
            meta.next_rotation = Some(window.start);
            meta.due = Some(window.start + Duration::milliseconds(offset));
        }
        None => {
            meta.next_rotation = None;
            meta.due = None;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn reschedule_picks_a_start_in_the_first_nine_tenths_of_the_next_window() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap();
        let mut meta = crate::model::RotationMeta {
            enabled: true,
            rules: Some(r#"{"ScheduleExpression": "cron(0 12 * * ? *)", "Duration": "2h"}"#.into()),
            ..Default::default()
        };
        let mut asked = 0;
        reschedule(&mut meta, now, now, |n| {
            asked = n;
            n - 1
        })
        .unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        assert_eq!(meta.next_rotation, Some(start));
        assert_eq!(asked, 2 * 3600 * 1000 * 9 / 10);
        assert_eq!(
            meta.due,
            Some(start + Duration::milliseconds(asked as i64 - 1))
        );
        meta.enabled = false;
        reschedule(&mut meta, now, now, |_| unreachable!()).unwrap();
        assert_eq!((meta.next_rotation, meta.due), (None, None));
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a test timestamp")
    }

    fn expression(text: &str) -> RotationRules {
        RotationRules {
            schedule_expression: Some(text.into()),
            ..RotationRules::default()
        }
    }

    fn with_duration(mut rules: RotationRules, duration: &str) -> RotationRules {
        rules.duration = Some(duration.into());
        rules
    }

    fn schedule(rules: &RotationRules) -> Schedule {
        Schedule::parse(rules).unwrap_or_else(|e| panic!("{rules:?} should parse: {e}"))
    }

    /// The window after `last`, asked at `last` (nothing missed).
    fn window(text: &str, last: &str) -> (String, String) {
        let last = at(last);
        let w = schedule(&expression(text))
            .next_window(last, last)
            .expect("a window");
        (w.start.to_rfc3339(), w.end.to_rfc3339())
    }

    /// The start of the next window after `last`, asked at `last`.
    fn next_start(text: &str, last: &str) -> String {
        window(text, last).0
    }

    fn refused(rules: &RotationRules) -> Error {
        match Schedule::parse(rules) {
            Ok(s) => panic!("{rules:?} should be refused, parsed as {s}"),
            Err(e) => e,
        }
    }

    fn assert_refused(rules: &RotationRules, kind: ErrorKind, fragment: &str) {
        let e = refused(rules);
        assert_eq!(e.kind, kind, "{rules:?}: {e}");
        assert!(
            e.message.contains(fragment),
            "{rules:?}: {:?} should contain {fragment:?}",
            e.message
        );
    }

    // --- RotationRules on the wire ---

    #[test]
    fn rules_use_aws_field_names_and_omit_absent_ones() {
        let rules: RotationRules =
            serde_json::from_str(r#"{"AutomaticallyAfterDays": 30, "Duration": "3h"}"#).unwrap();
        assert_eq!(rules.automatically_after_days, Some(30));
        assert_eq!(rules.duration.as_deref(), Some("3h"));
        assert_eq!(rules.schedule_expression, None);
        assert_eq!(
            serde_json::to_string(&rules).unwrap(),
            r#"{"AutomaticallyAfterDays":30,"Duration":"3h"}"#
        );
        let empty: RotationRules = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, RotationRules::default());
    }

    // --- AutomaticallyAfterDays and rate(N days) ---

    #[test]
    fn automatically_after_days_opens_at_midnight_n_days_later() {
        let rules = RotationRules {
            automatically_after_days: Some(30),
            ..RotationRules::default()
        };
        let last = at("2026-01-15T17:45:00Z");
        let w = schedule(&rules).next_window(last, last).unwrap();
        assert_eq!(w.start, at("2026-02-14T00:00:00Z"));
        assert_eq!(w.end, at("2026-02-15T00:00:00Z"));
    }

    #[test]
    fn rate_in_days_opens_at_midnight_and_closes_at_the_end_of_the_day() {
        assert_eq!(
            window("rate(10 days)", "2026-11-21T13:05:00Z"),
            (
                "2026-12-01T00:00:00+00:00".into(),
                "2026-12-02T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            next_start("rate(1 day)", "2026-12-31T23:59:59Z"),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next_start("rate(1 days)", "2026-03-01T00:00:00Z"),
            "2026-03-02T00:00:00+00:00"
        );
        assert_eq!(
            next_start("rate(1000 days)", "2026-01-01T00:00:00Z"),
            "2028-09-27T00:00:00+00:00"
        );
    }

    #[test]
    fn duration_shortens_a_day_window() {
        let s = schedule(&with_duration(expression("rate(10 days)"), "3h"));
        let last = at("2026-11-21T13:05:00Z");
        let w = s.next_window(last, last).unwrap();
        assert_eq!(w.start, at("2026-12-01T00:00:00Z"));
        assert_eq!(w.end, at("2026-12-01T03:00:00Z"));
        let full = schedule(&with_duration(expression("rate(2 days)"), "24h"));
        let w = full.next_window(last, last).unwrap();
        assert_eq!(w.end, at("2026-11-24T00:00:00Z"));
    }

    #[test]
    fn an_overdue_day_rotation_runs_in_the_next_daily_window_still_open() {
        let last = at("2026-01-01T10:00:00Z");
        // Due 2026-01-11, Rotor was down until the 20th at 15:00: today's window is open.
        let s = schedule(&expression("rate(10 days)"));
        let w = s.next_window(last, at("2026-01-20T15:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-20T00:00:00Z"));
        assert_eq!(w.end, at("2026-01-21T00:00:00Z"));
        assert!(w.contains(at("2026-01-20T15:00:00Z")));
        // With a 2h window, today's closed at 02:00: tomorrow's.
        let s = schedule(&with_duration(expression("rate(10 days)"), "2h"));
        let w = s.next_window(last, at("2026-01-20T15:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-21T00:00:00Z"));
        assert_eq!(w.end, at("2026-01-21T02:00:00Z"));
        // The due window itself, still open, is kept.
        let w = s.next_window(last, at("2026-01-11T01:30:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-11T00:00:00Z"));
    }

    // --- rate(N hours) ---

    #[test]
    fn rate_in_hours_opens_on_the_hour_n_hours_later_for_one_hour() {
        assert_eq!(
            window("rate(6 hours)", "2026-03-01T13:05:00Z"),
            (
                "2026-03-01T19:00:00+00:00".into(),
                "2026-03-01T20:00:00+00:00".into()
            )
        );
        assert_eq!(
            next_start("rate(23 hours)", "2026-03-01T13:00:00Z"),
            "2026-03-02T12:00:00+00:00"
        );
        assert_eq!(
            next_start("rate(4 hour)", "2026-03-01T22:59:00Z"),
            "2026-03-02T02:00:00+00:00"
        );
    }

    #[test]
    fn duration_sets_the_length_of_an_hour_window() {
        let s = schedule(&with_duration(expression("rate(6 hours)"), "2h"));
        let last = at("2026-03-01T13:05:00Z");
        let w = s.next_window(last, last).unwrap();
        assert_eq!(w.start, at("2026-03-01T19:00:00Z"));
        assert_eq!(w.end, at("2026-03-01T21:00:00Z"));
        // As long as the interval is fine; longer is refused.
        schedule(&with_duration(expression("rate(6 hours)"), "6h"));
        assert_refused(
            &with_duration(expression("rate(4 hours)"), "5h"),
            ErrorKind::InvalidParameter,
            "Duration: a 5h window is longer than the 4 hours between rotations",
        );
    }

    #[test]
    fn an_overdue_hour_rotation_runs_in_the_window_of_the_current_hour() {
        let s = schedule(&expression("rate(6 hours)"));
        let last = at("2026-03-01T13:05:00Z");
        let w = s.next_window(last, at("2026-03-02T08:40:00Z")).unwrap();
        assert_eq!(w.start, at("2026-03-02T08:00:00Z"));
        assert_eq!(w.end, at("2026-03-02T09:00:00Z"));
        // Still inside the due window: that one.
        let w = s.next_window(last, at("2026-03-01T19:59:00Z")).unwrap();
        assert_eq!(w.start, at("2026-03-01T19:00:00Z"));
    }

    // --- cron(): day-of-month ---

    #[test]
    fn cron_last_day_of_month() {
        assert_eq!(
            window("cron(0 16 L * ? *)", "2026-02-10T00:00:00Z"),
            (
                "2026-02-28T16:00:00+00:00".into(),
                "2026-03-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            next_start("cron(0 16 L * ? *)", "2028-02-10T00:00:00Z"),
            "2028-02-29T16:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 16 L * ? *)", "2026-02-28T16:00:00Z"),
            "2026-03-31T16:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 0 L-3 * ? *)", "2026-02-01T00:00:00Z"),
            "2026-02-25T00:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 0 L-30 * ? *)", "2026-02-01T00:00:00Z"),
            "2026-03-01T00:00:00+00:00"
        );
    }

    #[test]
    fn cron_nearest_weekday() {
        // 2026-08-15 is a Saturday: Friday the 14th.
        assert_eq!(
            next_start("cron(0 8 15W * ? *)", "2026-08-01T00:00:00Z"),
            "2026-08-14T08:00:00+00:00"
        );
        // 2026-11-15 is a Sunday: Monday the 16th.
        assert_eq!(
            next_start("cron(0 8 15W * ? *)", "2026-11-01T00:00:00Z"),
            "2026-11-16T08:00:00+00:00"
        );
        // A weekday stays put.
        assert_eq!(
            next_start("cron(0 8 15W * ? *)", "2026-03-20T00:00:00Z"),
            "2026-04-15T08:00:00+00:00"
        );
        // 2026-08-01 is a Saturday: not back into July, Monday the 3rd.
        assert_eq!(
            next_start("cron(0 8 1W * ? *)", "2026-07-20T00:00:00Z"),
            "2026-08-03T08:00:00+00:00"
        );
        // 2026-05-31 is a Sunday: not into June, Friday the 29th.
        assert_eq!(
            next_start("cron(0 8 31W * ? *)", "2026-05-20T00:00:00Z"),
            "2026-05-29T08:00:00+00:00"
        );
        // 31W does nothing in a 30-day month.
        assert_eq!(
            next_start("cron(0 8 31W * ? *)", "2026-06-01T00:00:00Z"),
            "2026-07-31T08:00:00+00:00"
        );
    }

    #[test]
    fn cron_last_weekday_of_month() {
        // 2026-05-31 is a Sunday, 2026-02-28 a Saturday, 2026-03-31 a Tuesday.
        assert_eq!(
            next_start("cron(0 8 LW * ? *)", "2026-05-01T00:00:00Z"),
            "2026-05-29T08:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 8 LW * ? *)", "2026-02-01T00:00:00Z"),
            "2026-02-27T08:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 8 LW * ? *)", "2026-03-01T00:00:00Z"),
            "2026-03-31T08:00:00+00:00"
        );
    }

    #[test]
    fn cron_day_of_month_lists_ranges_and_steps() {
        assert_eq!(
            next_start("cron(0 8 1/7 * ? *)", "2026-02-10T00:00:00Z"),
            "2026-02-15T08:00:00+00:00"
        );
        // 1/7 is 1, 8, 15, 22, 29: no 29th in February 2026.
        assert_eq!(
            next_start("cron(0 8 1/7 * ? *)", "2026-02-22T09:00:00Z"),
            "2026-03-01T08:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 8 1,15 * ? *)", "2026-02-01T08:00:00Z"),
            "2026-02-15T08:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 8 10-12 * ? *)", "2026-02-11T09:00:00Z"),
            "2026-02-12T08:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 0 31 * ? *)", "2026-04-01T00:00:00Z"),
            "2026-05-31T00:00:00+00:00"
        );
    }

    #[test]
    fn cron_february_29th_waits_for_a_leap_year_and_skips_2100() {
        assert_eq!(
            next_start("cron(0 0 29 2 ? *)", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 0 29 2 ? *)", "2096-03-01T00:00:00Z"),
            "2104-02-29T00:00:00+00:00"
        );
    }

    // --- cron(): day-of-week ---

    #[test]
    fn cron_nth_weekday_of_month() {
        // Fridays of March 2026: 6, 13, 20.
        assert_eq!(
            next_start("cron(0 10 ? * 6#3 *)", "2026-03-01T00:00:00Z"),
            "2026-03-20T10:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 10 ? * FRI#3 *)", "2026-03-20T10:00:00Z"),
            "2026-04-17T10:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 0 ? * SUN#1 *)", "2026-01-10T00:00:00Z"),
            "2026-02-01T00:00:00+00:00"
        );
        // February 2026 has four Sundays; March's fifth is the 29th.
        assert_eq!(
            next_start("cron(0 0 ? * 1#5 *)", "2026-02-01T00:00:00Z"),
            "2026-03-29T00:00:00+00:00"
        );
    }

    #[test]
    fn cron_last_weekday_of_a_kind() {
        // Fridays of May 2026: 1, 8, 15, 22, 29.
        assert_eq!(
            next_start("cron(0 10 ? * 6L *)", "2026-05-01T00:00:00Z"),
            "2026-05-29T10:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 10 ? * FRIL *)", "2026-02-01T00:00:00Z"),
            "2026-02-27T10:00:00+00:00"
        );
        // `L` alone is Saturday; 2026-02-10 is a Tuesday.
        assert_eq!(
            next_start("cron(0 10 ? * L *)", "2026-02-10T00:00:00Z"),
            "2026-02-14T10:00:00+00:00"
        );
    }

    #[test]
    fn cron_day_of_week_names_numbers_and_ranges() {
        // 2026-02-13 is a Friday.
        for text in [
            "cron(0 9 ? * MON-FRI *)",
            "cron(0 9 ? * mon-fri *)",
            "cron(0 9 ? * 2-6 *)",
            "cron(0 9 ? * MON,TUE,WED,THU,FRI *)",
            "cron(0 9 ? * 2-6/1 *)",
        ] {
            assert_eq!(
                next_start(text, "2026-02-13T10:00:00Z"),
                "2026-02-16T09:00:00+00:00",
                "{text}"
            );
        }
        assert_eq!(
            next_start("cron(0 9 ? * 1,7 *)", "2026-02-10T00:00:00Z"),
            "2026-02-14T09:00:00+00:00"
        );
        // 1/3 is Sunday, Wednesday and Saturday; 2026-02-12 is a Thursday.
        assert_eq!(
            next_start("cron(0 9 ? * 1/3 *)", "2026-02-12T00:00:00Z"),
            "2026-02-14T09:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 9 ? * * *)", "2026-02-13T10:00:00Z"),
            "2026-02-14T09:00:00+00:00"
        );
    }

    // --- cron(): months and hours ---

    #[test]
    fn cron_months_by_name_number_range_and_step() {
        for text in [
            "cron(0 0 1 JAN,APR,JUL,OCT ? *)",
            "cron(0 0 1 jan,apr,jul,oct ? *)",
            "cron(0 0 1 1/3 ? *)",
            "cron(0 0 1 */3 ? *)",
        ] {
            assert_eq!(
                next_start(text, "2026-04-01T00:00:00Z"),
                "2026-07-01T00:00:00+00:00",
                "{text}"
            );
        }
        assert_eq!(
            next_start("cron(0 0 15 MAR-MAY ? *)", "2026-05-15T00:00:00Z"),
            "2027-03-15T00:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 0 L DEC ? *)", "2026-01-01T00:00:00Z"),
            "2026-12-31T00:00:00+00:00"
        );
    }

    #[test]
    fn cron_hour_steps_reset_each_day_and_open_one_hour_windows() {
        let s = schedule(&expression("cron(0 4/12 * * ? *)"));
        let mut last = at("2026-03-01T05:00:00Z");
        let mut starts = Vec::new();
        for _ in 0..3 {
            let w = s.next_window(last, last).unwrap();
            assert_eq!(w.end - w.start, Duration::hours(1));
            starts.push(w.start.to_rfc3339());
            last = w.start;
        }
        assert_eq!(
            starts,
            [
                "2026-03-01T16:00:00+00:00",
                "2026-03-02T04:00:00+00:00",
                "2026-03-02T16:00:00+00:00"
            ]
        );
        assert_eq!(
            next_start("cron(0 0/4 * * ? *)", "2026-03-01T21:00:00Z"),
            "2026-03-02T00:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 2-14/6 * * ? *)", "2026-03-01T09:00:00Z"),
            "2026-03-01T14:00:00+00:00"
        );
    }

    #[test]
    fn cron_next_match_is_strictly_after_last() {
        assert_eq!(
            next_start("cron(0 10 * * ? *)", "2026-03-01T10:00:00Z"),
            "2026-03-02T10:00:00+00:00"
        );
        assert_eq!(
            next_start("cron(0 10 * * ? *)", "2026-03-01T09:59:59.999Z"),
            "2026-03-01T10:00:00+00:00"
        );
    }

    #[test]
    fn cron_duration_sets_the_window_and_must_fit_in_the_day() {
        let s = schedule(&with_duration(expression("cron(0 10 * * ? *)"), "3h"));
        let last = at("2026-03-01T12:00:00Z");
        let w = s.next_window(last, last).unwrap();
        assert_eq!(w.start, at("2026-03-02T10:00:00Z"));
        assert_eq!(w.end, at("2026-03-02T13:00:00Z"));
        schedule(&with_duration(expression("cron(0 0/6 * * ? *)"), "6h"));
        schedule(&with_duration(expression("cron(0 0 * * ? *)"), "24h"));
        assert_refused(
            &with_duration(expression("cron(0 22 * * ? *)"), "3h"),
            ErrorKind::InvalidParameter,
            "Duration: a 3h window opening at 22:00 would run into the next UTC day",
        );
        assert_refused(
            &with_duration(expression("cron(0 4,8 * * ? *)"), "5h"),
            ErrorKind::InvalidParameter,
            "Duration: a 5h window opening at 04:00 would run into the next one at 08:00",
        );
    }

    #[test]
    fn a_missed_cron_window_runs_while_open_then_waits_for_the_next_match() {
        let s = schedule(&expression("cron(0 10 * * ? *)"));
        let last = at("2026-01-01T12:00:00Z");
        // The window of the 5th, 10:00, lasts until midnight: still open at 15:00.
        let w = s.next_window(last, at("2026-01-05T15:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-05T10:00:00Z"));
        assert_eq!(w.end, at("2026-01-06T00:00:00Z"));
        // Before that day's window opens: that window, not an earlier closed one.
        let w = s.next_window(last, at("2026-01-05T08:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-05T10:00:00Z"));
        // A 2h window has closed by 15:00: the next day's.
        let s = schedule(&with_duration(expression("cron(0 10 * * ? *)"), "2h"));
        let w = s.next_window(last, at("2026-01-05T15:00:00Z")).unwrap();
        assert_eq!(w.start, at("2026-01-06T10:00:00Z"));
        // Years of downtime cost no more than a day's search.
        let w = s.next_window(last, at("2036-06-05T11:00:00Z")).unwrap();
        assert_eq!(w.start, at("2036-06-05T10:00:00Z"));
        let monthly = schedule(&expression("cron(0 16 L * ? *)"));
        let w = monthly
            .next_window(last, at("2031-04-30T23:00:00Z"))
            .unwrap();
        assert_eq!(w.start, at("2031-04-30T16:00:00Z"));
        let w = monthly
            .next_window(last, at("2031-05-01T00:00:00Z"))
            .unwrap();
        assert_eq!(w.start, at("2031-05-31T16:00:00Z"));
    }

    #[test]
    fn no_window_past_the_end_of_the_calendar() {
        let end = DateTime::<Utc>::MAX_UTC;
        for text in ["rate(1000 days)", "rate(4 hours)", "cron(0 16 L * ? *)"] {
            assert_eq!(
                schedule(&expression(text)).next_window(end, end),
                None,
                "{text}"
            );
        }
    }

    // --- Display and rules() ---

    #[test]
    fn display_is_the_canonical_expression() {
        let canonical = |text: &str| schedule(&expression(text)).to_string();
        assert_eq!(canonical("rate(1 days)"), "rate(1 day)");
        assert_eq!(canonical("rate( 10   day )"), "rate(10 days)");
        assert_eq!(canonical("rate(4 hour)"), "rate(4 hours)");
        assert_eq!(
            canonical("cron(0  10 ? * fri#3  *)"),
            "cron(0 10 ? * FRI#3 *)"
        );
        let after_days = RotationRules {
            automatically_after_days: Some(7),
            ..RotationRules::default()
        };
        assert_eq!(schedule(&after_days).to_string(), "rate(7 days)");
    }

    #[test]
    fn rules_echo_what_was_given_normalised_and_parse_back() {
        let after_days = RotationRules {
            automatically_after_days: Some(7),
            duration: Some("03h".into()),
            ..RotationRules::default()
        };
        assert_eq!(
            schedule(&after_days).rules(),
            RotationRules {
                automatically_after_days: Some(7),
                duration: Some("3h".into()),
                schedule_expression: None,
            }
        );
        assert_eq!(
            schedule(&expression("cron(0 8 15w jan-mar ? *)")).rules(),
            expression("cron(0 8 15W JAN-MAR ? *)")
        );
        for rules in [
            after_days,
            expression("rate(1 days)"),
            with_duration(expression("rate(12 hours)"), "4h"),
            with_duration(expression("cron(0 0/6 ? * MON-FRI *)"), "2h"),
            expression("cron(0 16 L * ? *)"),
        ] {
            let s = schedule(&rules);
            assert_eq!(schedule(&s.rules()), s, "{rules:?}");
        }
    }

    // --- refusals ---

    #[test]
    fn rules_need_exactly_one_of_days_and_expression() {
        assert_refused(
            &RotationRules {
                automatically_after_days: Some(7),
                schedule_expression: Some("rate(7 days)".into()),
                duration: None,
            },
            ErrorKind::InvalidParameter,
            "not both",
        );
        assert_refused(
            &RotationRules {
                duration: Some("2h".into()),
                ..RotationRules::default()
            },
            ErrorKind::InvalidParameter,
            "give AutomaticallyAfterDays or ScheduleExpression",
        );
        for days in [0, -1, 1001] {
            assert_refused(
                &RotationRules {
                    automatically_after_days: Some(days),
                    ..RotationRules::default()
                },
                ErrorKind::InvalidParameter,
                "RotationRules.AutomaticallyAfterDays must be within 1-1000.",
            );
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        let cases = [
            (
                "3",
                ErrorKind::Validation,
                "Duration: must be a number of hours",
            ),
            (
                "1234h",
                ErrorKind::Validation,
                "Duration: must be a number of hours",
            ),
            (
                "3 h",
                ErrorKind::Validation,
                "Duration: must be a number of hours",
            ),
            (
                "3H",
                ErrorKind::Validation,
                "Duration: must be a number of hours",
            ),
            ("h3", ErrorKind::InvalidParameter, "got \"h3\""),
            ("3hh", ErrorKind::InvalidParameter, "got \"3hh\""),
            ("0h", ErrorKind::InvalidParameter, "1 to 24 hours, got 0h"),
            ("25h", ErrorKind::InvalidParameter, "1 to 24 hours, got 25h"),
        ];
        for (duration, kind, fragment) in cases {
            assert_refused(
                &with_duration(expression("rate(10 days)"), duration),
                kind,
                fragment,
            );
        }
    }

    #[test]
    fn bad_expressions_are_refused() {
        use ErrorKind::{InvalidParameter as Param, Validation};
        let long = format!("rate({} days)", "0".repeat(250));
        let cases: &[(&str, ErrorKind, &str)] = &[
            ("", Validation, "1 to 256 characters"),
            (&long, Validation, "1 to 256 characters"),
            (
                "rate(1.5 days)",
                Validation,
                "the character '.' is not allowed",
            ),
            ("every 10 days", Param, "expected rate(...) or cron(...)"),
            ("RATE(10 days)", Param, "expected rate(...) or cron(...)"),
            ("rate(10 days", Param, "expected rate(...) or cron(...)"),
            // rate()
            (
                "rate(2 hours)",
                Param,
                "ScheduleExpression: rate() takes 4 to 23 hours, got 2",
            ),
            ("rate(1 hour)", Param, "rate() takes 4 to 23 hours, got 1"),
            (
                "rate(24 hours)",
                Param,
                "rate() takes 4 to 23 hours, got 24",
            ),
            ("rate(0 days)", Param, "rate() takes 1 to 1000 days, got 0"),
            (
                "rate(1001 days)",
                Param,
                "rate() takes 1 to 1000 days, got 1001",
            ),
            ("rate(99999999999 days)", Param, "too large"),
            (
                "rate(10 minutes)",
                Param,
                "rate() unit must be hours or days, got \"minutes\"",
            ),
            ("rate(-1 days)", Param, "\"-1\" is not a number"),
            ("rate(days)", Param, "rate() takes a value and a unit"),
            ("rate(1 2 days)", Param, "rate() takes a value and a unit"),
            // cron() shape
            ("cron(0 10 * * ?)", Param, "cron() takes 6 fields"),
            ("cron(0 10 * * ? * *)", Param, "got 7"),
            ("cron(30 10 * * ? *)", Param, "minutes must be 0"),
            ("cron(* 10 * * ? *)", Param, "minutes must be 0"),
            ("cron(0 10 * * ? 2026)", Param, "year must be *"),
            ("cron(0 10 * * ? 2026-2030)", Param, "year must be *"),
            ("cron(0 10 * * * *)", Param, "got neither"),
            ("cron(0 10 1 * MON *)", Param, "got neither"),
            ("cron(0 10 ? * ? *)", Param, "got it in both"),
            // hours
            (
                "cron(0 24 * * ? *)",
                Param,
                "hours field \"24\": 24 is out of range 0-23",
            ),
            ("cron(0 * * * ? *)", Param, "00:00 and 01:00, only 1h apart"),
            (
                "cron(0 4,6 * * ? *)",
                Param,
                "04:00 and 06:00, only 2h apart",
            ),
            ("cron(0 0/3 * * ? *)", Param, "only 3h apart"),
            (
                "cron(0 1,22 * * ? *)",
                Param,
                "22:00 and 01:00 the next day, only 3h apart",
            ),
            ("cron(0 1/7 * * ? *)", Param, "22:00 and 01:00 the next day"),
            (
                "cron(0 0/0 * * ? *)",
                Param,
                "the step 0 is out of range 1-23",
            ),
            ("cron(0 0/24 * * ? *)", Param, "the step 24 is out of range"),
            (
                "cron(0 10-2 * * ? *)",
                Param,
                "the range 10-2 runs backwards",
            ),
            ("cron(0 1,,5 * * ? *)", Param, "\"\" is not a number"),
            (
                "cron(0 a * * ? *)",
                Param,
                "hours field \"A\": \"A\" is not a number",
            ),
            // day-of-month
            (
                "cron(0 10 0 * ? *)",
                Param,
                "day-of-month field \"0\": 0 is out of range 1-31",
            ),
            ("cron(0 10 32 * ? *)", Param, "32 is out of range 1-31"),
            ("cron(0 10 32W * ? *)", Param, "32 is out of range 1-31"),
            ("cron(0 10 W * ? *)", Param, "\"\" is not a number"),
            (
                "cron(0 10 L-0 * ? *)",
                Param,
                "L-n takes n from 1 to 30, got 0",
            ),
            (
                "cron(0 10 L-31 * ? *)",
                Param,
                "L-n takes n from 1 to 30, got 31",
            ),
            (
                "cron(0 10 1,L * ? *)",
                Param,
                "L and W cannot be used in a list",
            ),
            (
                "cron(0 10 15W,20 * ? *)",
                Param,
                "L and W cannot be used in a list",
            ),
            ("cron(0 10 3L * ? *)", Param, "\"3L\" is not a number"),
            (
                "cron(0 0 30 2 ? *)",
                Param,
                "cron(0 0 30 2 ? *) never matches a date",
            ),
            ("cron(0 0 31 4,6,9,11 ? *)", Param, "never matches a date"),
            // month
            (
                "cron(0 10 1 13 ? *)",
                Param,
                "month field \"13\": 13 is out of range 1-12",
            ),
            (
                "cron(0 10 1 JANUARY ? *)",
                Param,
                "\"JANUARY\" is not a number",
            ),
            (
                "cron(0 10 1 NOV-FEB ? *)",
                Param,
                "the range NOV-FEB runs backwards",
            ),
            ("cron(0 10 1 L ? *)", Param, "month field \"L\""),
            // day-of-week
            (
                "cron(0 10 ? * 0 *)",
                Param,
                "day-of-week field \"0\": 0 is out of range 1-7",
            ),
            ("cron(0 10 ? * 8 *)", Param, "8 is out of range 1-7"),
            (
                "cron(0 10 ? * FRI-MON *)",
                Param,
                "the range FRI-MON runs backwards",
            ),
            (
                "cron(0 10 ? * 6#6 *)",
                Param,
                "# takes an occurrence from 1 to 5, got 6",
            ),
            ("cron(0 10 ? * 6#0 *)", Param, "got 0"),
            ("cron(0 10 ? * 8#1 *)", Param, "8 is out of range 1-7"),
            (
                "cron(0 10 ? * 2#1,3 *)",
                Param,
                "L and # cannot be used in a list",
            ),
            (
                "cron(0 10 ? * 6L,2 *)",
                Param,
                "L and # cannot be used in a list",
            ),
            (
                "cron(0 10 ? * FRIDAY *)",
                Param,
                "\"FRIDAY\" is not a number",
            ),
            ("cron(0 10 ? * 2W *)", Param, "\"2W\" is not a number"),
        ];
        for (text, kind, fragment) in cases {
            assert_refused(&expression(text), *kind, fragment);
        }
    }

    #[test]
    fn error_messages_name_the_field() {
        let e = refused(&expression("rate(2 hours)"));
        assert_eq!(
            e.message,
            "ScheduleExpression: rate() takes 4 to 23 hours, got 2"
        );
        assert_eq!(e.kind.aws_type(), "InvalidParameterException");
        let e = refused(&expression("cron(0 10 ? * 6#6 *)"));
        assert_eq!(
            e.message,
            "ScheduleExpression: cron() day-of-week field \"6#6\": # takes an occurrence from 1 to 5, got 6"
        );
    }

    // --- properties ---

    /// The next match found by walking hour by hour: slow, obviously right.
    fn brute_force_next_match(
        cron: &Cron,
        after: DateTime<Utc>,
        hours: i64,
    ) -> Option<DateTime<Utc>> {
        let mut t = floor_hour(after)?;
        for _ in 0..hours {
            t += Duration::hours(1);
            if cron.months & (1 << t.month()) != 0
                && cron.days.matches(t.date_naive())
                && cron.hours & (1 << t.hour()) != 0
            {
                return Some(t);
            }
        }
        None
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            // 2000-01-01 to 2100-01-01, to the second.
            (946_684_800i64..4_102_444_800)
                .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range"))
        }

        fn cron_text() -> impl Strategy<Value = String> {
            let hours =
                prop::sample::select(vec!["0", "7", "23", "4/12", "0/4", "3,9", "2-14/6", "1/5"]);
            let month =
                prop::sample::select(vec!["*", "2", "FEB", "JAN,JUL", "3-5", "*/4", "2/5", "DEC"]);
            let day_of_month = prop::sample::select(vec![
                "*", "1", "15", "29", "31", "L", "L-2", "LW", "1W", "15W", "31W", "1/10", "10-12",
            ]);
            let day_of_week = prop::sample::select(vec![
                "*", "MON", "1,7", "2-6", "6#3", "1#5", "2#1", "6L", "1L", "L", "2/3",
            ]);
            (hours, month, any::<bool>(), day_of_month, day_of_week).prop_map(
                |(hours, month, by_month_day, dom, dow)| {
                    if by_month_day {
                        format!("cron(0 {hours} {dom} {month} ? *)")
                    } else {
                        format!("cron(0 {hours} ? {month} {dow} *)")
                    }
                },
            )
        }

        fn any_schedule() -> impl Strategy<Value = RotationRules> {
            let rates = prop::sample::select(vec![
                "rate(4 hours)",
                "rate(13 hours)",
                "rate(23 hours)",
                "rate(1 day)",
                "rate(30 days)",
            ])
            .prop_map(expression);
            let durations = prop::option::of(prop::sample::select(vec!["1h", "2h", "4h"]));
            let after_days = (1i64..=1000).prop_map(|days| RotationRules {
                automatically_after_days: Some(days),
                ..RotationRules::default()
            });
            (
                prop_oneof![rates, cron_text().prop_map(|t| expression(&t)), after_days],
                durations,
            )
                .prop_map(|(mut rules, duration)| {
                    rules.duration = duration.map(str::to_string);
                    rules
                })
                .prop_filter("a valid schedule", |rules| Schedule::parse(rules).is_ok())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn next_match_agrees_with_walking_hour_by_hour(text in cron_text(), after in instant()) {
                // Some combinations never match (31W in February): parse refuses those.
                let Ok(Recurrence::Cron(cron)) = parse_expression(&text) else {
                    return Err(TestCaseError::reject("never matches"));
                };
                let fast = cron.next_match(after);
                prop_assert!(fast.is_some());
                let searched = (fast.unwrap() - after).num_hours() + 2;
                prop_assert_eq!(fast, brute_force_next_match(&cron, after, searched), "{}", text);
            }

            #[test]
            fn windows_follow_last_and_end_after_now(
                rules in any_schedule(),
                last in instant(),
                late_by in prop_oneof![Just(0i64), 0i64..=3 * 24 * 3600, 0i64..=3 * 365 * 24 * 3600],
            ) {
                let s = Schedule::parse(&rules).unwrap();
                let now = last + Duration::seconds(late_by);
                let w = s.next_window(last, now).unwrap();
                prop_assert!(w.start > last, "{}: {:?} after {}", s, w, last);
                prop_assert!(w.end > w.start);
                prop_assert!(w.end > now, "{}: {:?} at {}", s, w, now);
                prop_assert!(w.end - w.start <= Duration::hours(24));
                prop_assert_eq!(w.start, floor_hour(w.start).unwrap(), "windows open on the hour");
            }

            #[test]
            fn rotating_in_a_window_schedules_the_next_one_after_it(
                rules in any_schedule(),
                last in instant(),
                at_permille in 0i64..1000,
            ) {
                let s = Schedule::parse(&rules).unwrap();
                let mut rotated = last;
                let mut previous: Option<Window> = None;
                for _ in 0..5 {
                    let w = s.next_window(rotated, rotated).unwrap();
                    if let Some(p) = previous {
                        prop_assert!(w.start >= p.end, "{}: {:?} overlaps {:?}", s, w, p);
                    }
                    // Rotate somewhere inside the window.
                    rotated = w.start + (w.end - w.start) * (at_permille as i32) / 1000;
                    prop_assert!(w.contains(rotated));
                    previous = Some(w);
                }
            }
        }
    }
}
