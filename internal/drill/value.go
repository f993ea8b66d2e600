package drill

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// emptyValue tells whether a query's first value counts as empty: NULL,
// an empty text, 0 or false. A drill's query must give a value that is not,
// so "SELECT count(*) FROM accounts" fails on a table restored empty.
func emptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case []byte:
		return emptyText(string(x))
	case string:
		return emptyText(x)
	case int64:
		return x == 0
	case int32:
		return x == 0
	case int:
		return x == 0
	case float64:
		return x == 0
	}
	return emptyText(fmt.Sprint(v))
}

func emptyText(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "false") {
		return true
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f == 0
}

// queryVerdict turns the first value of a query (found: it returned a row)
// into an error or a note.
func queryVerdict(query string, found bool, v any) (string, error) {
	if !found {
		return "", fmt.Errorf("query %q returned no row", query)
	}
	if emptyValue(v) {
		return "", fmt.Errorf("query %q returned %s", query, describeValue(v))
	}
	return fmt.Sprintf("query %q returned %s", query, describeValue(v)), nil
}

func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return describeText(string(x))
	case string:
		return describeText(x)
	}
	return fmt.Sprint(v)
}

// describeText quotes a text unless it is a number (MySQL sends numbers
// as text).
func describeText(s string) string {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return strconv.Quote(s)
}

// firstValue runs q and returns the first value of its first row, if any.
func firstValue(ctx context.Context, db *sql.DB, q string) (found bool, v any, err error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return false, nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, nil, rows.Err()
	}
	cols, err := rows.Columns()
	if err != nil {
		return false, nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return false, nil, err
	}
	if len(vals) == 0 {
		return true, nil, nil
	}
	return true, vals[0], rows.Err()
}
