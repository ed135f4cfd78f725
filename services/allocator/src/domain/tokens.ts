// Search tokens and the lexical score (spec §3.9.2). The same tokenizer feeds the stored search tokens, the
// query terms and the built-in hash embedder, so a word is recognised the same way everywhere.

/** A lower-case letter or a digit followed by an upper-case letter: `camelCase`, `iPhone`, `2041Report`. */
const CASE_BOUNDARY = /([\p{Ll}\p{Nd}])(?=\p{Lu})/gu;
/** Everything that is neither a Unicode letter nor a decimal digit separates tokens. */
const SEPARATORS = /[^\p{L}\p{Nd}]+/u;
const MIN_TOKEN_LENGTH = 2;
/** Prefix matching only for terms this long, so `a`-like fragments do not match half the index. */
const MIN_PREFIX_TERM_LENGTH = 3;

/** Length in code points, so a letter outside the BMP counts once. */
function codePointLength(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}

/** §3.9.2: NFKC, boundary before an upper-case letter that follows a lower-case letter/digit, lower-case, split on non letters/digits, length ≥ 2. */
export function tokenize(text: string): string[] {
  const normalized = text.normalize('NFKC').replace(CASE_BOUNDARY, '$1 ').toLowerCase();
  const tokens: string[] = [];
  for (const piece of normalized.split(SEPARATORS)) {
    if (piece.length >= MIN_TOKEN_LENGTH && codePointLength(piece) >= MIN_TOKEN_LENGTH) tokens.push(piece);
  }
  return tokens;
}

/** Distinct query terms in order. */
export function queryTerms(query: string): string[] {
  return [...new Set(tokenize(query))];
}

/** A term matches token w if w = t, or |t| ≥ 3 and w starts with t. */
export function termMatches(term: string, token: string): boolean {
  if (token === term) return true;
  return codePointLength(term) >= MIN_PREFIX_TERM_LENGTH && token.startsWith(term);
}

/** m of T terms matched → 0.5 + 0.5·m/T, or null when none matched; also which named fields matched. */
export function lexicalScore(
  terms: readonly string[],
  fields: Readonly<Record<string, readonly string[]>>,
): { score: number; matchedFields: string[] } | null {
  const distinctTerms = [...new Set(terms)];
  if (distinctTerms.length === 0) return null;
  const fieldNames = Object.keys(fields);
  const matchedFieldNames = new Set<string>();
  let matchedTerms = 0;
  for (const term of distinctTerms) {
    let termMatched = false;
    for (const fieldName of fieldNames) {
      const tokens = fields[fieldName] ?? [];
      if (tokens.some((token) => termMatches(term, token))) {
        termMatched = true;
        matchedFieldNames.add(fieldName);
      }
    }
    if (termMatched) matchedTerms++;
  }
  if (matchedTerms === 0) return null;
  return {
    score: 0.5 + (0.5 * matchedTerms) / distinctTerms.length,
    // in the order the fields were given, whatever the order the terms matched in
    matchedFields: fieldNames.filter((fieldName) => matchedFieldNames.has(fieldName)),
  };
}
