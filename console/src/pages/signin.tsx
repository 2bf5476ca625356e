import { useState } from 'preact/hooks';
import { sendJson, type SessionInfo } from '../api.js';
import { Problem, useAction } from '../ui.js';

export function SignInPage({ onSignedIn }: { onSignedIn(info: SessionInfo): void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const action = useAction();
  return (
    <section class="narrow" aria-label="Sign in">
      <h1>Sign in</h1>
      <p>
        Use your registry credentials (the ones docker login and podman login take). A robot account signs in with its name (
        <code>robot$project+name</code>) and secret, and then only reads its own project.
      </p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void action.run(async () => {
            const info = await sendJson<SessionInfo>('POST', '/session', { user, password });
            if (info) onSignedIn(info);
          });
        }}
      >
        <label for="signin-user">User name</label>
        <input
          id="signin-user"
          name="username"
          autoComplete="username"
          required
          value={user}
          onInput={(e) => setUser(e.currentTarget.value)}
        />
        <label for="signin-password">Password</label>
        <input
          id="signin-password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        <button type="submit" disabled={action.busy}>
          Sign in
        </button>
        <Problem message={action.error} />
      </form>
    </section>
  );
}
