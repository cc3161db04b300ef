/**
 * Valid Kazakh IINs for tests: YYMMDD, a century/sex digit, a 4-digit serial, and the check digit
 * (weights 1..11 mod 11, then 3..11,1,2 when the first gives 10). Serials whose check digit would be 10 are skipped.
 */
export function makeIin(birth: string, serial: number): string {
  // birth: 'YYYY-MM-DD'
  const [y, m, d] = birth.split('-');
  const century = Number(y.slice(0, 2));
  const digit7 = century === 18 ? 1 : century === 19 ? 3 : 5;
  for (let s = serial; s < serial + 100; s++) {
    const base = `${y.slice(2)}${m}${d}${digit7}${String(s % 10000).padStart(4, '0')}`;
    const digits = [...base].map(Number);
    let check = digits.reduce((sum, x, i) => sum + x * (i + 1), 0) % 11;
    if (check === 10) {
      const w = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];
      check = digits.reduce((sum, x, i) => sum + x * w[i], 0) % 11;
      if (check === 10) continue;
    }
    return base + String(check);
  }
  throw new Error('no valid serial');
}
