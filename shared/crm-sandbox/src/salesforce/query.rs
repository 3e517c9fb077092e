//! SOQL execution over generated + stored records, query cursors and page rendering.
//!
//! A query is checked against the org's schema (real error codes and caret messages),
//! then evaluated once into the ordered list of matching record indices; pages are rendered
//! from that list on demand, so a cursor costs 8 bytes per matching record and a page costs
//! only the records on it. Range filters on `SystemModstamp`/`LastModifiedDate` narrow the
//! scan of generated records by binary search, because their stamps grow with the index.

use super::errors::SfError;
use super::ids::{id15, parse_id};
use super::schema::{FieldType, ObjectDef, Schema};
use super::soql::{self, CmpOp, Cond, DateLiteral, Literal, Query, Select, caret_message};
use super::store::{OrgData, OrgMeta, RecordView, generated_stamp};
use super::value::{Val, write_json_str};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// A column of the result.
#[derive(Debug, Clone)]
pub enum OutCol {
    /// A field of the queried object (index into its fields).
    Field(usize),
    /// Fields of a parent record reached through a lookup (`Account.Name`).
    Parent {
        /// The lookup field on the queried object.
        ref_field: usize,
        /// Relationship name used as the JSON key.
        key: String,
        /// The parent object.
        parent: Arc<ObjectDef>,
        /// Fields of the parent.
        fields: Vec<usize>,
    },
}

/// A checked, executable query.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The queried object.
    pub obj: Arc<ObjectDef>,
    /// Output columns.
    pub columns: Vec<OutCol>,
    /// `SELECT COUNT()`.
    pub count_only: bool,
    filter: Option<Pred>,
    order: Vec<(usize, bool, bool)>,
    limit: Option<u64>,
    offset: Option<u64>,
}

#[derive(Debug, Clone)]
enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Cmp {
        field: usize,
        op: CmpOp,
        value: Val,
    },
    Range {
        field: usize,
        op: CmpOp,
        start: i64,
        end: i64,
    },
    In {
        field: usize,
        negated: bool,
        values: Vec<Val>,
    },
    Like {
        field: usize,
        pattern: Vec<LikeTok>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum LikeTok {
    Any,
    One,
    Char(char),
}

fn malformed(src: &str, pos: usize, message: &str) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "MALFORMED_QUERY",
        caret_message(src, pos, message),
    )
}

fn invalid_field(src: &str, pos: usize, message: String) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD",
        caret_message(src, pos, &message),
    )
}

fn no_such_column(src: &str, pos: usize, field: &str, object: &str) -> SfError {
    invalid_field(
        src,
        pos,
        format!(
            "No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

/// 400 `INVALID_TYPE` for the object a query reads, as the real API answers when the
/// object does not exist or the connected user may not see it (crm-reference
/// `salesforce/error-invalid-type-unknown-object.json`).
fn invalid_type(src: &str, q: &Query) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_TYPE",
        caret_message(
            src,
            q.from.pos,
            &format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                q.from.name
            ),
        ),
    )
}

/// The refusal of query `src` whose object the connected user may not see (a forced
/// [`crate::common::FaultOutcome::Refused`]): `INVALID_TYPE` naming the object, or
/// `MALFORMED_QUERY` when it does not parse.
pub fn refused(src: &str) -> SfError {
    match soql::parse(src) {
        Ok(q) => invalid_type(src, &q),
        Err(e) => malformed(src, e.pos, &e.message),
    }
}

/// Parses and checks a query against the schema.
pub fn plan(src: &str, schema: &Schema) -> Result<Plan, SfError> {
    let q: Query = soql::parse(src).map_err(|e| malformed(src, e.pos, &e.message))?;
    let Some(obj) = schema.object(&q.from.name).cloned() else {
        return Err(invalid_type(src, &q));
    };
    let field_index = |name: &str, pos: usize| -> Result<usize, SfError> {
        obj.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| no_such_column(src, pos, name, &obj.name))
    };
    let mut columns: Vec<OutCol> = Vec::new();
    let count_only = matches!(q.select, Select::Count);
    if let Select::Fields(fields) = &q.select {
        for ident in fields {
            if let Some((rel, fname)) = ident.name.split_once('.') {
                let Some(ref_field) = obj.fields.iter().position(|f| {
                    f.relationship_name
                        .as_deref()
                        .is_some_and(|r| r.eq_ignore_ascii_case(rel))
                }) else {
                    return Err(invalid_field(
                        src,
                        ident.pos,
                        format!(
                            "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                        ),
                    ));
                };
                let rf = &obj.fields[ref_field];
                let Some(parent) = rf
                    .reference_to
                    .first()
                    .and_then(|t| schema.object(t))
                    .cloned()
                else {
                    return Err(no_such_column(src, ident.pos, &ident.name, &obj.name));
                };
                if fname.contains('.') {
                    return Err(malformed(
                        src,
                        ident.pos,
                        "nested relationship paths are not supported by the sandbox",
                    ));
                }
                let Some(pf) = parent
                    .fields
                    .iter()
                    .position(|f| f.name.eq_ignore_ascii_case(fname))
                else {
                    return Err(no_such_column(src, ident.pos, fname, &parent.name));
                };
                let key = rf.relationship_name.clone().unwrap_or_default();
                if let Some(OutCol::Parent { fields, .. }) = columns
                    .iter_mut()
                    .find(|c| matches!(c, OutCol::Parent { ref_field: r, .. } if *r == ref_field))
                {
                    if !fields.contains(&pf) {
                        fields.push(pf);
                    }
                } else {
                    columns.push(OutCol::Parent {
                        ref_field,
                        key,
                        parent,
                        fields: vec![pf],
                    });
                }
            } else {
                let fi = field_index(&ident.name, ident.pos)?;
                if columns
                    .iter()
                    .any(|c| matches!(c, OutCol::Field(x) if *x == fi))
                {
                    return Err(malformed(
                        src,
                        ident.pos,
                        &format!("duplicate field selected: {}", obj.fields[fi].name),
                    ));
                }
                columns.push(OutCol::Field(fi));
            }
        }
    }
    let filter = match &q.filter {
        Some(c) => Some(compile(c, src, &obj)?),
        None => None,
    };
    let mut order = Vec::new();
    for o in &q.order_by {
        if o.field.name.contains('.') {
            return Err(malformed(
                src,
                o.field.pos,
                "ordering by a relationship field is not supported by the sandbox",
            ));
        }
        let fi = field_index(&o.field.name, o.field.pos)?;
        let nulls_last = o.nulls_last.unwrap_or(o.desc);
        order.push((fi, o.desc, nulls_last));
    }
    if q.offset.is_some_and(|o| o > 2000) {
        return Err(SfError::new(
            StatusCode::BAD_REQUEST,
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ));
    }
    Ok(Plan {
        obj,
        columns,
        count_only,
        filter,
        order,
        limit: q.limit,
        offset: q.offset,
    })
}

fn compile(c: &Cond, src: &str, obj: &ObjectDef) -> Result<Pred, SfError> {
    let field_of = |ident: &soql::Ident| -> Result<usize, SfError> {
        if ident.name.contains('.') {
            return Err(malformed(
                src,
                ident.pos,
                "filtering on a relationship field is not supported by the sandbox",
            ));
        }
        obj.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(&ident.name))
            .ok_or_else(|| no_such_column(src, ident.pos, &ident.name, &obj.name))
    };
    Ok(match c {
        Cond::And(p) => Pred::And(
            p.iter()
                .map(|c| compile(c, src, obj))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(p) => Pred::Or(
            p.iter()
                .map(|c| compile(c, src, obj))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Not(c) => Pred::Not(Box::new(compile(c, src, obj)?)),
        Cond::Cmp {
            field,
            op,
            value,
            value_pos,
        } => {
            let fi = field_of(field)?;
            let f = &obj.fields[fi];
            if *op == CmpOp::Like {
                let Literal::Str(s) = value else {
                    return Err(invalid_field(
                        src,
                        *value_pos,
                        format!(
                            "value of filter criterion for field '{}' must be of type string and should be enclosed in quotes",
                            f.name
                        ),
                    ));
                };
                if !f.ftype.is_text() {
                    return Err(invalid_field(
                        src,
                        field.pos,
                        format!("invalid operator on field '{}'", f.name),
                    ));
                }
                return Ok(Pred::Like {
                    field: fi,
                    pattern: like_pattern(s),
                });
            }
            if let Literal::Relative(r) = value {
                if !matches!(f.ftype, FieldType::Date | FieldType::Datetime) {
                    return Err(type_error(src, *value_pos, &f.name, f.ftype));
                }
                let (start, end) = relative_range(*r);
                return Ok(Pred::Range {
                    field: fi,
                    op: *op,
                    start,
                    end,
                });
            }
            let v = literal_value(value, f.ftype)
                .ok_or_else(|| type_error(src, *value_pos, &f.name, f.ftype))?;
            if matches!(f.ftype, FieldType::Id)
                && matches!(op, CmpOp::Eq | CmpOp::Ne)
                && let Val::Str(s) = &v
                && !super::ids::is_well_formed(s)
            {
                return Err(SfError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    caret_message(src, *value_pos, &format!("invalid ID field: {s}")),
                ));
            }
            Pred::Cmp {
                field: fi,
                op: *op,
                value: v,
            }
        }
        Cond::In {
            field,
            negated,
            values,
            value_pos,
        } => {
            let fi = field_of(field)?;
            let f = &obj.fields[fi];
            let vals = values
                .iter()
                .map(|l| {
                    literal_value(l, f.ftype)
                        .ok_or_else(|| type_error(src, *value_pos, &f.name, f.ftype))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Pred::In {
                field: fi,
                negated: *negated,
                values: vals,
            }
        }
    })
}

fn type_error(src: &str, pos: usize, field: &str, ftype: FieldType) -> SfError {
    let (tname, quoted) = match ftype {
        FieldType::Datetime => ("dateTime", "should not be enclosed in quotes"),
        FieldType::Date => ("date", "should not be enclosed in quotes"),
        FieldType::Boolean => ("boolean", "should not be enclosed in quotes"),
        FieldType::Int => ("int", "should not be enclosed in quotes"),
        t if t.is_numeric() => ("double", "should not be enclosed in quotes"),
        _ => ("string", "should be enclosed in quotes"),
    };
    invalid_field(
        src,
        pos,
        format!(
            "value of filter criterion for field '{field}' must be of type {tname} and {quoted}"
        ),
    )
}

fn literal_value(l: &Literal, ftype: FieldType) -> Option<Val> {
    Some(match (l, ftype) {
        (Literal::Null, _) => Val::Null,
        (Literal::Str(s), t) if t.is_text() => Val::Str(s.clone()),
        (Literal::Num(n, _), FieldType::Int) => Val::Int(n.round() as i64),
        (Literal::Num(n, _), t) if t.is_numeric() => Val::Num(*n),
        (Literal::Bool(b), FieldType::Boolean) => Val::Bool(*b),
        (Literal::Date(d), FieldType::Date) => Val::Date(*d),
        (Literal::DateTime(t, _), FieldType::Datetime) => Val::DateTime(*t),
        _ => return None,
    })
}

fn relative_range(r: DateLiteral) -> (i64, i64) {
    let today = Utc::now().date_naive();
    let midnight = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |n| n.and_utc().timestamp())
    };
    let day = Duration::days(1);
    match r {
        DateLiteral::Today => (midnight(today), midnight(today + day)),
        DateLiteral::Yesterday => (midnight(today - day), midnight(today)),
        DateLiteral::Tomorrow => (midnight(today + day), midnight(today + day + day)),
        DateLiteral::LastNDays(n) => (
            midnight(today - Duration::days(i64::from(n))),
            midnight(today + day),
        ),
        DateLiteral::NextNDays(n) => (
            midnight(today),
            midnight(today + Duration::days(i64::from(n) + 1)),
        ),
    }
}

fn like_pattern(s: &str) -> Vec<LikeTok> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.extend(n.to_lowercase().map(LikeTok::Char));
                }
            }
            '%' => out.push(LikeTok::Any),
            '_' => out.push(LikeTok::One),
            c => out.extend(c.to_lowercase().map(LikeTok::Char)),
        }
    }
    out
}

fn like_match(pat: &[LikeTok], text: &[char]) -> bool {
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(LikeTok::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(LikeTok::One) => {
                p += 1;
                t += 1;
            }
            Some(LikeTok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|x| *x == LikeTok::Any)
}

fn as_secs(v: &Val) -> Option<i64> {
    match v {
        Val::DateTime(t) => Some(*t),
        Val::Date(d) => d.and_hms_opt(0, 0, 0).map(|n| n.and_utc().timestamp()),
        _ => None,
    }
}

fn eq_val(a: &Val, b: &Val, ftype: FieldType) -> bool {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) if matches!(ftype, FieldType::Id | FieldType::Reference) => {
            id15(x) == id15(y)
        }
        _ => a.soql_cmp(b) == Ordering::Equal && a.is_null() == b.is_null(),
    }
}

impl Plan {
    /// A plan that selects the given fields of `obj` (all when `fields` is `None`); used to
    /// render single records.
    #[must_use]
    pub fn for_fields(obj: Arc<ObjectDef>, fields: Option<Vec<usize>>) -> Self {
        let columns = fields
            .unwrap_or_else(|| (0..obj.fields.len()).collect())
            .into_iter()
            .map(OutCol::Field)
            .collect();
        Self {
            obj,
            columns,
            count_only: false,
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
        }
    }

    fn eval(&self, p: &Pred, rec: &RecordView<'_>) -> bool {
        let obj = &self.obj;
        match p {
            Pred::And(ps) => ps.iter().all(|p| self.eval(p, rec)),
            Pred::Or(ps) => ps.iter().any(|p| self.eval(p, rec)),
            Pred::Not(p) => !self.eval(p, rec),
            Pred::Cmp { field, op, value } => {
                let f = &obj.fields[*field];
                let v = rec.get(obj, f);
                match op {
                    CmpOp::Eq => eq_val(&v, value, f.ftype),
                    CmpOp::Ne => !eq_val(&v, value, f.ftype),
                    _ if v.is_null() || value.is_null() => false,
                    CmpOp::Lt => v.soql_cmp(value) == Ordering::Less,
                    CmpOp::Le => v.soql_cmp(value) != Ordering::Greater,
                    CmpOp::Gt => v.soql_cmp(value) == Ordering::Greater,
                    CmpOp::Ge => v.soql_cmp(value) != Ordering::Less,
                    CmpOp::Like => false,
                }
            }
            Pred::Range {
                field,
                op,
                start,
                end,
            } => {
                let f = &obj.fields[*field];
                let Some(t) = as_secs(&rec.get(obj, f)) else {
                    return *op == CmpOp::Ne;
                };
                match op {
                    CmpOp::Eq => t >= *start && t < *end,
                    CmpOp::Ne => !(t >= *start && t < *end),
                    CmpOp::Lt => t < *start,
                    CmpOp::Le => t < *end,
                    CmpOp::Gt => t >= *end,
                    CmpOp::Ge => t >= *start,
                    CmpOp::Like => false,
                }
            }
            Pred::In {
                field,
                negated,
                values,
            } => {
                let f = &obj.fields[*field];
                let v = rec.get(obj, f);
                let hit = values.iter().any(|x| eq_val(&v, x, f.ftype));
                hit != *negated
            }
            Pred::Like { field, pattern } => {
                let f = &obj.fields[*field];
                match rec.get(obj, f) {
                    Val::Str(s) => {
                        let text: Vec<char> = s.chars().flat_map(char::to_lowercase).collect();
                        like_match(pattern, &text)
                    }
                    _ => false,
                }
            }
        }
    }

    /// The range of generated indices that can match, from top-level stamp bounds.
    fn generated_bounds(&self, meta: &OrgMeta, base: u64) -> (u64, u64) {
        let mut lo_t = i64::MIN;
        let mut hi_t = i64::MAX; // exclusive upper bound on the stamp
        // `Id = '…'` pins the generated range to one index (ids encode their index).
        let mut id_range: Option<(u64, u64)> = None;
        let mut visit = |p: &Pred| {
            if let Pred::Cmp {
                field,
                op: CmpOp::Eq,
                value: Val::Str(id),
            } = p
                && self.obj.fields[*field].name == "Id"
            {
                id_range = Some(match parse_id(id) {
                    Some(parts)
                        if parts.prefix == self.obj.key_prefix && parts.org == meta.code =>
                    {
                        (
                            parts.index.min(base),
                            parts.index.saturating_add(1).min(base),
                        )
                    }
                    _ => (0, 0),
                });
            }
            if let Pred::Cmp {
                field,
                op,
                value: Val::DateTime(t),
            } = p
            {
                let name = self.obj.fields[*field].name.as_str();
                if name == "SystemModstamp" || name == "LastModifiedDate" {
                    match op {
                        CmpOp::Gt => lo_t = lo_t.max(t + 1),
                        CmpOp::Ge | CmpOp::Eq => lo_t = lo_t.max(*t),
                        _ => {}
                    }
                    match op {
                        CmpOp::Lt => hi_t = hi_t.min(*t),
                        CmpOp::Le | CmpOp::Eq => hi_t = hi_t.min(t + 1),
                        _ => {}
                    }
                }
            }
        };
        match &self.filter {
            Some(Pred::And(ps)) => ps.iter().for_each(&mut visit),
            Some(p) => visit(p),
            None => {}
        }
        let first_at_least = |t: i64| -> u64 {
            let (mut lo, mut hi) = (0u64, base);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if generated_stamp(meta, base, mid) < t {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        if let Some((lo, hi)) = id_range {
            return (lo, hi.max(lo));
        }
        let lo = if lo_t == i64::MIN {
            0
        } else {
            first_at_least(lo_t)
        };
        let hi = if hi_t == i64::MAX {
            base
        } else {
            first_at_least(hi_t)
        };
        (lo, hi.max(lo))
    }

    /// Evaluates the query: the ordered indices of the matching records.
    #[must_use]
    pub fn execute(&self, data: &OrgData, meta: &OrgMeta, include_deleted: bool) -> Vec<u64> {
        let Some(store) = data.objects.get(&self.obj.name) else {
            return Vec::new();
        };
        let mut out: Vec<u64> = Vec::new();
        let (lo, hi) = self.generated_bounds(meta, store.base_count);
        let overlay_empty = store.live.is_empty() && store.deleted.is_empty();
        for i in lo..hi {
            if !overlay_empty && (store.live.contains_key(&i) || store.deleted.contains_key(&i)) {
                continue;
            }
            if let Some(p) = &self.filter {
                let Some(view) = data.view(meta, &self.obj, i) else {
                    continue;
                };
                if !self.eval(p, &view) {
                    continue;
                }
            }
            out.push(i);
        }
        let overlay = store
            .live
            .iter()
            .map(|(i, r)| (*i, RecordView::Stored(r)))
            .chain(
                store
                    .deleted
                    .iter()
                    .filter(|(_, d)| include_deleted && !d.purged)
                    .map(|(i, d)| (*i, RecordView::Deleted(d))),
            );
        for (i, view) in overlay {
            if self.filter.as_ref().is_none_or(|p| self.eval(p, &view)) {
                out.push(i);
            }
        }
        if self.order.is_empty() || self.order_is_index_order() {
            out.sort_unstable();
            if self.order.first().is_some_and(|o| o.1) {
                out.reverse();
            }
        } else {
            let mut keyed: Vec<(Vec<Val>, u64)> = out
                .into_iter()
                .filter_map(|i| {
                    let view = data.view(meta, &self.obj, i)?;
                    let keys = self
                        .order
                        .iter()
                        .map(|(f, _, _)| view.get(&self.obj, &self.obj.fields[*f]))
                        .collect();
                    Some((keys, i))
                })
                .collect();
            keyed.sort_by(|a, b| {
                for (k, (_, desc, nulls_last)) in self.order.iter().enumerate() {
                    let (x, y) = (&a.0[k], &b.0[k]);
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => {
                            if *nulls_last {
                                Ordering::Greater
                            } else {
                                Ordering::Less
                            }
                        }
                        (false, true) => {
                            if *nulls_last {
                                Ordering::Less
                            } else {
                                Ordering::Greater
                            }
                        }
                        (false, false) => {
                            let o = x.soql_cmp(y);
                            if *desc { o.reverse() } else { o }
                        }
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.1.cmp(&b.1)
            });
            out = keyed.into_iter().map(|(_, i)| i).collect();
        }
        let offset = self.offset.unwrap_or(0) as usize;
        if offset > 0 {
            out.drain(..offset.min(out.len()));
        }
        if let Some(l) = self.limit {
            out.truncate(l as usize);
        }
        out
    }

    fn order_is_index_order(&self) -> bool {
        self.order.len() == 1 && self.obj.fields[self.order[0].0].name == "Id"
    }

    /// Appends the JSON of the records at `indices` (comma-separated objects) to `out`.
    pub fn write_records(
        &self,
        data: &OrgData,
        meta: &OrgMeta,
        version: &str,
        indices: &[u64],
        out: &mut String,
    ) {
        let obj = &self.obj;
        let id_field = obj.fields.iter().position(|f| f.name == "Id");
        // `,"Name":` for every column, escaped once per page rather than once per record.
        let keys: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let name = match c {
                    OutCol::Field(fi) => obj.fields[*fi].name.as_str(),
                    OutCol::Parent { key, .. } => key.as_str(),
                };
                let mut k = String::from(",");
                write_json_str(name, &mut k);
                k.push(':');
                k
            })
            .collect();
        let mut first = true;
        for &i in indices {
            let Some(view) = data.view(meta, obj, i) else {
                continue;
            };
            if !first {
                out.push(',');
            }
            first = false;
            let id = id_field
                .map(|f| view.get(obj, &obj.fields[f]))
                .unwrap_or_default();
            write_attributes(out, &obj.name, version, id.as_str().unwrap_or_default());
            for (col, key) in self.columns.iter().zip(&keys) {
                match col {
                    OutCol::Field(fi) => {
                        let f = &obj.fields[*fi];
                        out.push_str(key);
                        if Some(*fi) == id_field {
                            id.write_json(f.ftype, out);
                        } else {
                            view.get(obj, f).write_json(f.ftype, out);
                        }
                    }
                    OutCol::Parent {
                        ref_field,
                        parent,
                        fields,
                        ..
                    } => {
                        out.push_str(key);
                        let target = view.get(obj, &obj.fields[*ref_field]);
                        let parent_view = target
                            .as_str()
                            .and_then(parse_id)
                            .filter(|p| p.prefix == parent.key_prefix && p.org == meta.code)
                            .and_then(|p| data.view(meta, parent, p.index))
                            .filter(|v| !v.is_deleted());
                        match (parent_view, target.as_str()) {
                            (Some(pv), Some(pid)) => {
                                write_attributes(out, &parent.name, version, pid);
                                for pf in fields {
                                    let f = &parent.fields[*pf];
                                    out.push(',');
                                    write_json_str(&f.name, out);
                                    out.push(':');
                                    pv.get(parent, f).write_json(f.ftype, out);
                                }
                                out.push('}');
                            }
                            _ => out.push_str("null"),
                        }
                    }
                }
            }
            out.push('}');
        }
    }
}

/// Writes `{"attributes":{"type":…,"url":…}` (object left open).
fn write_attributes(out: &mut String, object: &str, version: &str, id: &str) {
    out.push_str("{\"attributes\":{\"type\":");
    write_json_str(object, out);
    out.push_str(",\"url\":\"/services/data/");
    out.push_str(version);
    out.push_str("/sobjects/");
    out.push_str(object);
    out.push('/');
    out.push_str(id);
    out.push_str("\"}");
}

/// An open query cursor.
#[derive(Debug)]
pub struct Cursor {
    /// The plan.
    pub plan: Arc<Plan>,
    /// Matching indices in order.
    pub indices: Arc<Vec<u64>>,
    /// Records per page.
    pub batch: usize,
    last_used: Instant,
}

/// The open cursors of one org, oldest evicted first (real orgs allow few open cursors).
#[derive(Debug, Default)]
pub struct Cursors {
    map: HashMap<String, Cursor>,
    order: VecDeque<String>,
    counter: u64,
}

/// Most open cursors per org; opening more invalidates the oldest.
pub const MAX_CURSORS: usize = 50;
/// Idle time after which a cursor expires.
pub const CURSOR_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Cursors {
    /// Stores a cursor; returns its locator (`01g…`).
    pub fn open(
        &mut self,
        org_code: &str,
        plan: Arc<Plan>,
        indices: Arc<Vec<u64>>,
        batch: usize,
    ) -> String {
        self.counter += 1;
        let locator = super::ids::make_id("01g", org_code, self.counter);
        self.map.insert(
            locator.clone(),
            Cursor {
                plan,
                indices,
                batch,
                last_used: Instant::now(),
            },
        );
        self.order.push_back(locator.clone());
        while self.order.len() > MAX_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        locator
    }

    /// Looks a cursor up, refreshing its idle timer; `None` when unknown or expired.
    pub fn get(&mut self, locator: &str) -> Option<(Arc<Plan>, Arc<Vec<u64>>, usize)> {
        let c = self.map.get_mut(locator)?;
        if c.last_used.elapsed() > CURSOR_TTL {
            self.map.remove(locator);
            self.order.retain(|l| l != locator);
            return None;
        }
        c.last_used = Instant::now();
        Some((c.plan.clone(), c.indices.clone(), c.batch))
    }

    /// Drops every cursor (after a schema change, or on demand).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

/// Renders one page: `{"totalSize","done","nextRecordsUrl"?,"records"}`.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn render_page(
    plan: &Plan,
    data: &OrgData,
    meta: &OrgMeta,
    version: &str,
    indices: &[u64],
    start: usize,
    batch: usize,
    locator: Option<&str>,
) -> String {
    let total = indices.len();
    let end = (start + batch).min(total);
    let done = end >= total;
    let mut out = String::with_capacity((end.saturating_sub(start)) * 1200 + 128);
    out.push_str("{\"totalSize\":");
    out.push_str(&total.to_string());
    out.push_str(",\"done\":");
    out.push_str(if done { "true" } else { "false" });
    if !done && let Some(loc) = locator {
        out.push_str(",\"nextRecordsUrl\":\"/services/data/");
        out.push_str(version);
        out.push_str("/query/");
        out.push_str(loc);
        out.push('-');
        out.push_str(&end.to_string());
        out.push('"');
    }
    out.push_str(",\"records\":[");
    if start < end {
        plan.write_records(data, meta, version, &indices[start..end], &mut out);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::value::cmp_ci;

    #[test]
    fn like_matches_like_soql() {
        let m = |p: &str, t: &str| {
            let text: Vec<char> = t.to_lowercase().chars().collect();
            like_match(&like_pattern(p), &text)
        };
        assert!(m("Acme%", "ACME Systems"));
        assert!(m("%sys%", "Acme Systems"));
        assert!(m("A_me", "Acme"));
        assert!(!m("A_me", "Acmee"));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("%", ""));
    }

    #[test]
    fn cmp_ci_is_case_insensitive() {
        assert_eq!(cmp_ci("abc", "ABC"), Ordering::Equal);
    }
}
