import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import FormControl from "@mui/material/FormControl";
import Grid from "@mui/material/Grid";
import InputLabel from "@mui/material/InputLabel";
import MenuItem from "@mui/material/MenuItem";
import Select from "@mui/material/Select";
import Tab from "@mui/material/Tab";
import Tabs from "@mui/material/Tabs";
import TextField from "@mui/material/TextField";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link as RouterLink, useParams } from "react-router";
import { call, requestId } from "../../api/client";
import { formatUsd, formatUsdAuto, MoneyInputError, parseUsd } from "../../api/money";
import { ErrorAlert } from "../../components/ErrorAlert";
import { PageHeader } from "../../components/PageHeader";
import { Panel } from "../../components/Panel";
import { CreditsService, type Transaction } from "../../gen/creditmeter/credits/v1/credits_pb";
import { AccountOverview } from "../overview/AccountOverview";
import { useBalance, useTiers } from "../overview/queries";
import { signedAmount } from "../transactions/csv";
import { TransactionsTable } from "../transactions/TransactionsTable";
import { UsageView } from "../usage/UsageView";

/**
 * One id per form submission (AIP-155): kept while the same form is retried,
 * renewed after success, so a double click or a retry moves money once.
 */
function useSubmissionId() {
  const [id, setId] = useState(requestId);
  return { id, renew: () => setId(requestId()) };
}

function AllocateForm({ user }: { user: string }) {
  const client = useQueryClient();
  const submission = useSubmissionId();
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [expires, setExpires] = useState("");
  const [inputError, setInputError] = useState("");
  const allocate = useMutation({
    mutationFn: (input: { amountNanos: bigint; reason: string; expires: string; id: string }) =>
      call(CreditsService.method.allocate, {
        userId: user,
        amountNanos: input.amountNanos,
        reason: input.reason,
        requestId: input.id,
        expiresAt: input.expires ? timestampFromDate(new Date(`${input.expires}T23:59:59`)) : undefined,
      }),
    onSuccess: () => {
      submission.renew();
      setAmount("");
      setReason("");
      setExpires("");
      void client.invalidateQueries({ queryKey: ["balance", user] });
      void client.invalidateQueries({ queryKey: ["transactions", user] });
    },
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    setInputError("");
    try {
      const nanos = parseUsd(amount);
      if (nanos <= 0n) throw new MoneyInputError("The amount must be more than zero.");
      allocate.mutate({ amountNanos: nanos, reason: reason.trim(), expires, id: submission.id });
    } catch (error) {
      setInputError(error instanceof Error ? error.message : "Invalid amount");
    }
  }
  return (
    <Panel title="Allocate credits" id="allocate">
      <Box component="form" onSubmit={submit} sx={{ display: "grid", gap: 1.5 }}>
        <TextField
          label="Amount (USD)"
          value={amount}
          onChange={(e) => setAmount(e.target.value)}
          required
          error={!!inputError}
          helperText={inputError || " "}
          slotProps={{ htmlInput: { inputMode: "decimal" } }}
        />
        <TextField
          label="Reason"
          value={reason}
          onChange={(e) => setReason(e.target.value)}
          required
          slotProps={{ htmlInput: { maxLength: 500 } }}
        />
        <TextField
          label="Expires on (optional)"
          type="date"
          value={expires}
          onChange={(e) => setExpires(e.target.value)}
          slotProps={{ inputLabel: { shrink: true } }}
        />
        <Button type="submit" variant="contained" disabled={allocate.isPending}>
          Allocate
        </Button>
      </Box>
      {allocate.isError ? (
        <Box sx={{ mt: 1.5 }}>
          <ErrorAlert error={allocate.error} />
        </Box>
      ) : null}
      {allocate.isSuccess ? (
        <Alert severity="success" role="status" sx={{ mt: 1.5 }}>
          Allocated {formatUsd(allocate.data.transaction?.amountNanos ?? 0n)}. New balance{" "}
          {formatUsd(allocate.data.transaction?.balanceAfterNanos ?? 0n)}.
        </Alert>
      ) : null}
    </Panel>
  );
}

function TierForm({ user }: { user: string }) {
  const client = useQueryClient();
  const tiers = useTiers();
  const balance = useBalance(user);
  const submission = useSubmissionId();
  const [tier, setTier] = useState("");
  const change = useMutation({
    mutationFn: (input: { tier: string; id: string }) =>
      call(CreditsService.method.setTier, {
        userId: user,
        tier: input.tier,
        requestId: input.id,
        reason: "changed in the admin dashboard",
      }),
    onSuccess: () => {
      submission.renew();
      void client.invalidateQueries({ queryKey: ["balance", user] });
      void client.invalidateQueries({ queryKey: ["transactions", user] });
    },
  });
  const chosen = tier || balance.data?.tier || "";
  return (
    <Panel title="Plan" id="tier">
      <Box
        component="form"
        onSubmit={(e) => {
          e.preventDefault();
          change.mutate({ tier: chosen, id: submission.id });
        }}
        sx={{ display: "grid", gap: 1.5 }}
      >
        <FormControl>
          <InputLabel id="tier-select-label">Tier</InputLabel>
          <Select labelId="tier-select-label" label="Tier" value={tiers.data ? chosen : ""} onChange={(e) => setTier(e.target.value)}>
            {tiers.data?.tiers.map((t) => (
              <MenuItem key={t.tierId} value={t.tierId}>
                {t.displayName}
              </MenuItem>
            ))}
          </Select>
        </FormControl>
        <Button type="submit" variant="outlined" disabled={change.isPending || !chosen || chosen === balance.data?.tier}>
          Change tier
        </Button>
      </Box>
      {change.isError ? (
        <Box sx={{ mt: 1.5 }}>
          <ErrorAlert error={change.error} />
        </Box>
      ) : null}
      {change.isSuccess ? (
        <Alert severity="success" role="status" sx={{ mt: 1.5 }}>
          Moved from {change.data.previousTier} to {change.data.account?.tier}.
        </Alert>
      ) : null}
    </Panel>
  );
}

function RefundDialog({ user, tx, onClose }: { user: string; tx: Transaction; onClose: () => void }) {
  const client = useQueryClient();
  const [id] = useState(requestId);
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [inputError, setInputError] = useState("");
  const refund = useMutation({
    mutationFn: (nanos: bigint) =>
      call(CreditsService.method.refund, {
        userId: user,
        transactionId: tx.transactionId,
        amountNanos: nanos,
        reason: reason.trim(),
        requestId: id,
      }),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["balance", user] });
      void client.invalidateQueries({ queryKey: ["transactions", user] });
    },
  });
  return (
    <Dialog open onClose={onClose} aria-labelledby="refund-title" fullWidth maxWidth="xs">
      <DialogTitle id="refund-title">Refund a charge of {formatUsdAuto(-signedAmount(tx))}</DialogTitle>
      <Box
        component="form"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          setInputError("");
          try {
            refund.mutate(parseUsd(amount));
          } catch (error) {
            setInputError(error instanceof Error ? error.message : "Invalid amount");
          }
        }}
      >
        <DialogContent sx={{ display: "grid", gap: 1.5, pt: "8px !important" }}>
          <TextField
            label="Refund amount (USD)"
            value={amount}
            onChange={(e) => setAmount(e.target.value)}
            required
            error={!!inputError}
            helperText={inputError || " "}
            autoFocus
          />
          <TextField label="Refund reason" value={reason} onChange={(e) => setReason(e.target.value)} required />
          {refund.isError ? <ErrorAlert error={refund.error} /> : null}
          {refund.isSuccess ? (
            <Alert severity="success" role="status">
              Refunded. {formatUsd(refund.data.refundableRemainingNanos)} of this charge can still be refunded.
            </Alert>
          ) : null}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose}>Close</Button>
          <Button type="submit" variant="contained" disabled={refund.isPending || refund.isSuccess}>
            Refund
          </Button>
        </DialogActions>
      </Box>
    </Dialog>
  );
}

export default function AccountDetailPage() {
  const { userId = "" } = useParams();
  const [tab, setTab] = useState(0);
  const [refunding, setRefunding] = useState<Transaction | null>(null);
  const balance = useBalance(userId);
  return (
    <>
      <PageHeader
        title={userId}
        subtitle={
          <>
            <RouterLink to="/admin/credits">All accounts</RouterLink> / {userId}
          </>
        }
      />
      {balance.error ? (
        <ErrorAlert error={balance.error} title="Could not load this account" />
      ) : (
        <Grid container spacing={2.5}>
          <Grid size={{ xs: 12, lg: 8 }}>
            <Tabs
              value={tab}
              onChange={(_, v: number) => setTab(v)}
              aria-label="Account views"
              sx={{ mb: 2 }}
              variant="scrollable"
              allowScrollButtonsMobile
            >
              <Tab label="Overview" />
              <Tab label="Usage" />
              <Tab label="Transactions" />
            </Tabs>
            {tab === 0 ? <AccountOverview user={userId} /> : null}
            {tab === 1 ? <UsageView user={userId} /> : null}
            {tab === 2 ? (
              <TransactionsTable
                user={userId}
                rowAction={(tx) =>
                  signedAmount(tx) < 0n ? (
                    <Button size="small" onClick={() => setRefunding(tx)} aria-label={`Refund transaction ${tx.transactionId}`}>
                      Refund
                    </Button>
                  ) : null
                }
              />
            ) : null}
          </Grid>
          <Grid size={{ xs: 12, lg: 4 }} sx={{ display: "grid", gap: 2.5, alignContent: "start" }}>
            <AllocateForm user={userId} />
            <TierForm user={userId} />
          </Grid>
        </Grid>
      )}
      {refunding ? <RefundDialog user={userId} tx={refunding} onClose={() => setRefunding(null)} /> : null}
    </>
  );
}
