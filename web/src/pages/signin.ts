import { ApiError, type Me, call } from '../api';
import { h, setText } from '../dom';

/** The sign-in form: an operator token, checked against GET /me before it is kept. */
export function signInPage(message: string, onSignedIn: (token: string, me: Me) => void): HTMLElement {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-label': 'Operator token', size: 48 });
  const note = h('p', { class: 'muted', role: 'status', 'data-testid': 'signin-message' }, message);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin panel' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Paste an operator token (role read, operate or admin). It is kept in this browser tab only and sent to the API with each request.'),
    h('label', {}, 'Operator token ', input),
    button,
    note,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    setText(note, 'Checking…');
    try {
      const me = await call<Me>('/me', { token });
      input.value = '';
      onSignedIn(token, me);
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      setText(note, status === 401 ? 'This token was refused.' : status === 403 ? 'This is not an operator token.' : (err as Error).message);
    } finally {
      button.disabled = false;
    }
  });
  queueMicrotask(() => input.focus());
  return form;
}
