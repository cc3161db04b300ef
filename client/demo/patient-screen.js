// patient-screen.js: the desk page's patient view (the hook of demo.js, `setPatientView`) on top of PatientView
// (./patient-view.js). The desk's "Show to the patient" button calls show(); the page calls the hook's methods for
// each identification; this module translates between the two:
//
//   desk hook (demo.js)                         PatientView
//   open({stream, identification})          ->  open(stream), if shown (else kept for show())
//   guidance(g), challenge(c)               ->  guidance(g), challenge(c), if shown
//   verdict(v, words)                       ->  verdict(v.result): the patient's words (patient_view.verdict.*),
//                                               never the desk's (no reason, no detail)
//   close({state, code})                    ->  the run ended: without a verdict, verdict('cancelled'), or
//                                               'no_template' / 'failed' for a run that could not go on
//   language(lang)                          ->  setLanguage(lang), until the patient picks their own on the view
//   showLight                               =   the view's showLight (inside the view while it is shown)
//
// The patient's language is the desk's until the patient picks another on the view; each show() starts again from
// the desk's. The view's close button only hides the view: the identification goes on, and show() brings it back
// with the run's camera and its last instruction. The camera stream is the client module's: nothing here (or in the
// view) stops it. Plain ES module, no build step.
import { PatientView, VERDICT_RESULTS } from '/demo/patient-view.js';
import { LANGUAGES, loadLanguage, t } from '/demo/i18n.js';

const RESULTS = new Set(VERDICT_RESULTS);

export class PatientScreen {
  /**
   * `container`: where the view is built (it covers the window over the page). `lang`: the desk's language.
   * `onClose()`: the view's close button was pressed (the view has hidden itself).
   */
  constructor(container, { lang = 'en', onClose = null } = {}) {
    this.deskLang = lang;
    /** The language the patient picked on the view; null: the desk's. */
    this.patientLang = null;
    this.shown = false;
    /** The last identification: {stream, guidance (the last, for show()), verdict, ended}; null before the first. */
    this.run = null;
    this.onClose = typeof onClose === 'function' ? onClose : null;
    this.view = new PatientView(container, {
      t: (key, vars, l) => t(l, key, vars),
      lang,
      languages: LANGUAGES.map((l) => l.code),
      onLanguage: (l) => this.pickLanguage(l),
      onClose: () => {
        this.shown = false;
        if (this.onClose) this.onClose();
      },
    });
    this.showLight = this.view.showLight;
    // Every language the patient may pick, loaded before the view shows (i18n's t is synchronous).
    this.ready = Promise.all([this.view.ready, ...LANGUAGES.map((l) => loadLanguage(l.code).catch(() => undefined))]);
  }

  /** The desk's button: shows the view for the identification in progress, or waiting for the next one. */
  async show() {
    await this.ready;
    this.patientLang = null;
    this.view.setLanguage(this.deskLang);
    this.shown = true;
    const run = this.run && !this.run.ended ? this.run : null;
    this.view.open(run ? run.stream : null);
    if (run && run.guidance) {
      // The last instruction at once; its countdown comes back with the next message (this one's windowMs is old).
      const g = { ...run.guidance };
      delete g.windowMs;
      this.view.guidance(g);
    }
  }

  /** Hides the view (as its close button does), the identification going on. */
  hide() {
    this.shown = false;
    this.view.close();
  }

  pickLanguage(lang) {
    this.patientLang = lang;
    // Loaded by `ready`; should that have failed, English stands in until it loads.
    loadLanguage(lang)
      .then(() => {
        if (this.patientLang === lang) this.view.setLanguage(lang);
      })
      .catch(() => undefined);
  }

  // The hook of demo.js (setPatientView) --------------------------------------------------------------------------

  open({ stream = null } = {}) {
    this.run = { stream, guidance: null, verdict: null, ended: false };
    if (this.shown) this.view.open(stream);
  }

  guidance(g) {
    if (this.run) this.run.guidance = g;
    if (this.shown) this.view.guidance(g);
  }

  challenge(c) {
    if (this.shown) this.view.challenge(c);
  }

  verdict(v) {
    const result = v && RESULTS.has(v.result) ? v.result : 'error';
    if (this.run) this.run.verdict = result;
    if (this.shown) this.view.verdict(result);
  }

  /** The run ended (verdict, failure, cancel or refusal), also one that never reached the camera. */
  close({ state = null, code = null } = {}) {
    // The run that ended: the one open() began, or one that ended before the camera (e.g. a refused session).
    const run = this.run && !this.run.ended ? this.run : null;
    if (!run || !run.verdict) {
      const result = state === 'cancelled' ? 'cancelled' : code === 'no_template' ? 'no_template' : 'failed';
      if (this.shown) this.view.verdict(result);
    }
    // The client released the camera: the next show() waits for the next run.
    this.run = { stream: null, guidance: null, verdict: run ? run.verdict : null, ended: true };
  }

  language(lang) {
    this.deskLang = lang;
    if (!this.patientLang) this.view.setLanguage(lang);
  }
}
