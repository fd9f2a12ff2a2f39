//! Draws `weir top`'s screens from its [`Top`] state: the pipelines table, or one pipeline's
//! details (the text of `weir status NAME`), with a title line and a footer of keys.

use super::model::{Row as TopRow, SortKey, Top, View};
use crate::admin::render::{human_count, human_duration_ms, pipeline_details};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

/// The table's columns: header, width (0: what the others leave, at least 22), and the sort
/// key that orders by it.
const COLUMNS: [(&str, u16, Option<SortKey>); 9] = [
    ("NAME", 18, Some(SortKey::Name)),
    ("STATE", 0, None),
    ("IN/S", 8, Some(SortKey::InputRate)),
    ("OUT/S", 8, Some(SortKey::OutputRate)),
    ("BATCH", 9, Some(SortKey::BatchTime)),
    ("WM LAG", 8, Some(SortKey::WatermarkLag)),
    ("BACKLOG", 12, None),
    ("STATE SIZE", 16, None),
    ("ERRORS", 7, Some(SortKey::Errors)),
];

fn rate(r: Option<f64>) -> String {
    r.map_or("-".into(), human_count)
}

fn cells(row: &TopRow) -> [String; 9] {
    [
        row.name.clone(),
        row.state.clone(),
        rate(row.input_rate),
        rate(row.output_rate),
        row.batch_ms.map_or("-".into(), |ms| {
            if ms >= 1000.0 {
                format!("{:.1} s", ms / 1000.0)
            } else {
                format!("{ms:.1} ms")
            }
        }),
        row.watermark_lag_ms.map_or("-".into(), human_duration_ms),
        row.backlog.as_ref().map_or("-".into(), |(amount, unit)| {
            format!("{} {unit}", human_count(*amount as f64))
        }),
        row.state_size.clone(),
        row.errors.to_string(),
    ]
}

fn title(top: &Top) -> Line<'static> {
    let counts = top
        .status()
        .map_or("waiting for the daemon".to_string(), |s| {
            s.counts.to_string()
        });
    Line::from(format!("weir top — {counts}")).style(Style::new().add_modifier(Modifier::BOLD))
}

fn footer(top: &Top, keys: &str) -> Line<'static> {
    match &top.error {
        Some(error) => {
            Line::from(format!("{error} (retrying) · q quit")).style(Style::new().fg(Color::Red))
        }
        None => Line::from(keys.to_string()).style(Style::new().add_modifier(Modifier::DIM)),
    }
}

/// Draws the screen `top` is on.
pub fn draw(frame: &mut Frame, top: &Top, now_ms: i64) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(title(top), head);
    match &top.view {
        View::Table => {
            let rows = top.rows(now_ms);
            let order = if top.descending { "▼" } else { "▲" };
            let header = Row::new(COLUMNS.iter().map(|(name, _, key)| {
                if *key == Some(top.sort) {
                    Cell::from(format!("{name}{order}"))
                } else {
                    Cell::from(*name)
                }
            }))
            .style(Style::new().add_modifier(Modifier::BOLD));
            let body_rows = rows.iter().map(|row| {
                let style = if row.troubled {
                    Style::new().fg(Color::Red)
                } else {
                    Style::new()
                };
                Row::new(cells(row)).style(style)
            });
            let widths = COLUMNS.iter().map(|(_, w, _)| match w {
                0 => Constraint::Min(22),
                w => Constraint::Length(*w),
            });
            let table = Table::new(body_rows, widths)
                .header(header)
                .column_spacing(1)
                .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
            let mut state = TableState::default().with_selected(top.selected_index(&rows));
            if rows.is_empty() && top.status().is_some() {
                frame.render_widget(Paragraph::new("(no pipelines)"), body);
            } else {
                frame.render_stateful_widget(table, body, &mut state);
            }
            let keys = format!(
                "q quit · ↑↓ select · enter details · s sort (by {}) · r reverse",
                top.sort.label()
            );
            frame.render_widget(footer(top, &keys), foot);
        }
        View::Details { name, scroll } => {
            let text = match top.details() {
                Some(report) => pipeline_details(report, now_ms),
                None => format!("asking the daemon about {name}…"),
            };
            frame.render_widget(Paragraph::new(text).scroll((*scroll, 0)), body);
            frame.render_widget(footer(top, "q quit · esc back · ↑↓ scroll"), foot);
        }
    }
}
