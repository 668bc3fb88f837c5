import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import LinearProgress from "@mui/material/LinearProgress";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { ApiError, call, requestId } from "../../api/client";
import { formatUsd } from "../../api/money";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { enumLabel, enumOf, formatDate } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import { Panel } from "../../components/Panel";
import { AccountSchema, OpenRouterService, type Account } from "../../gen/creditmeter/openrouter/v1/openrouter_pb";

const keySourceEnum = enumOf(AccountSchema, "activeKey");
const KEY = ["openrouter-account"] as const;

function Row({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <Box sx={{ display: "flex", justifyContent: "space-between", gap: 2, py: 0.75, borderBottom: "1px solid #eef1f6" }}>
      <Typography color="text.secondary">{label}</Typography>
      <Typography component="div" sx={{ textAlign: "right", fontWeight: 550 }}>
        {children}
      </Typography>
    </Box>
  );
}

function KeyStatus({ account }: { account: Account }) {
  const used = account.limitNanos > 0n ? Number((account.usageNanos * 100n) / account.limitNanos) : 0;
  return (
    <Box>
      <Row label="Key in use">
        <Chip size="small" color="primary" label={enumLabel(keySourceEnum, account.activeKey)} data-testid="active-key" />
      </Row>
      <Row label="Provisioned key">{account.keyHint ? `…${account.keyHint}` : "none"}</Row>
      <Row label="Spending limit">{account.limitNanos > 0n ? formatUsd(account.limitNanos) : "none"}</Row>
      <Row label="Used on OpenRouter">{formatUsd(account.usageNanos)}</Row>
      {account.limitNanos > 0n ? (
        <LinearProgress
          variant="determinate"
          value={Math.min(100, used)}
          aria-label="OpenRouter key usage of its limit"
          sx={{ my: 1.5, height: 8, borderRadius: 4 }}
        />
      ) : null}
      <Row label="Your own key (BYOK)">{account.byokHint ? <span data-testid="byok-hint">…{account.byokHint}</span> : "not set"}</Row>
      <Row label="Last synced">{formatDate(account.syncedAt, true)}</Row>
    </Box>
  );
}

export default function AccountPage() {
  const client = useQueryClient();
  const [apiKey, setApiKey] = useState("");
  const account = useQuery({
    queryKey: KEY,
    queryFn: ({ signal }) => call(OpenRouterService.method.getAccount, {}, signal),
  });
  const refresh = () => void client.invalidateQueries({ queryKey: KEY });
  const create = useMutation({ mutationFn: () => call(OpenRouterService.method.createAccount, {}), onSuccess: refresh });
  const sync = useMutation({
    mutationFn: () => call(OpenRouterService.method.syncBalance, {}),
    onSuccess: (r) => client.setQueryData(KEY, { account: r.account }),
  });
  const setByok = useMutation({
    mutationFn: (key: string) => call(OpenRouterService.method.setByokKey, { apiKey: key, requestId: requestId() }),
    onSuccess: () => {
      setApiKey(""); // the key is sent once and never kept or shown again
      refresh();
    },
  });
  const removeByok = useMutation({
    mutationFn: () => call(OpenRouterService.method.deleteByokKey, { requestId: requestId() }),
    onSuccess: refresh,
  });
  const missing = account.error instanceof ApiError && account.error.reason === "ACCOUNT_NOT_FOUND";
  const data = account.data?.account;

  function submitKey(event: FormEvent) {
    event.preventDefault();
    if (apiKey.trim()) setByok.mutate(apiKey.trim());
  }

  return (
    <>
      <PageHeader title="Account" subtitle="Your OpenRouter key: the one we provision for you, or your own." />
      <Box sx={{ display: "grid", gap: 2.5, gridTemplateColumns: { xs: "1fr", md: "1fr 1fr" }, alignItems: "start" }}>
        <Panel
          title="OpenRouter key"
          id="openrouter"
          loading={account.isPending}
          error={missing ? undefined : account.error}
          action={
            data ? (
              <Button size="small" variant="outlined" onClick={() => sync.mutate()} disabled={sync.isPending}>
                Sync usage
              </Button>
            ) : undefined
          }
        >
          {missing ? (
            <EmptyState title="No OpenRouter key yet">
              <p>We create a key for you on OpenRouter, with a spending limit from your plan.</p>
              <Button variant="contained" onClick={() => create.mutate()} disabled={create.isPending}>
                Create my key
              </Button>
            </EmptyState>
          ) : data ? (
            <KeyStatus account={data} />
          ) : null}
          {create.error ? <ErrorAlert error={create.error} /> : null}
          {sync.error ? <ErrorAlert error={sync.error} /> : null}
          {sync.isSuccess ? (
            <Alert severity="success" role="status" sx={{ mt: 1.5 }}>
              Usage synced from OpenRouter.
            </Alert>
          ) : null}
        </Panel>
        <Panel title="Bring your own key" id="byok">
          <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
            Calls then run on your own OpenRouter key and you pay only the platform markup. The key is checked with OpenRouter, stored
            encrypted, and never shown again — only its last four characters.
          </Typography>
          <Box component="form" onSubmit={submitKey} sx={{ display: "flex", gap: 1.5, flexDirection: { xs: "column", sm: "row" } }}>
            <TextField
              label="OpenRouter API key"
              type="password"
              value={apiKey}
              onChange={(e) => setApiKey(e.target.value)}
              autoComplete="off"
              sx={{ flexGrow: 1 }}
            />
            <Button type="submit" variant="contained" disabled={setByok.isPending || !apiKey.trim()}>
              Save key
            </Button>
          </Box>
          {setByok.error ? (
            <Box sx={{ mt: 1.5 }}>
              <ErrorAlert error={setByok.error} />
            </Box>
          ) : null}
          {setByok.isSuccess ? (
            <Alert severity="success" role="status" sx={{ mt: 1.5 }}>
              Your key ending in …{setByok.data.byokHint} is saved.
            </Alert>
          ) : null}
          {data?.byokHint ? (
            <Box sx={{ mt: 2 }}>
              <Button color="error" variant="outlined" onClick={() => removeByok.mutate()} disabled={removeByok.isPending}>
                Remove my key
              </Button>
            </Box>
          ) : null}
          {removeByok.error ? (
            <Box sx={{ mt: 1.5 }}>
              <ErrorAlert error={removeByok.error} />
            </Box>
          ) : null}
        </Panel>
      </Box>
    </>
  );
}
