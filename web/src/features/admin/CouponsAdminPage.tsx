import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Checkbox from "@mui/material/Checkbox";
import Chip from "@mui/material/Chip";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import FormControl from "@mui/material/FormControl";
import FormControlLabel from "@mui/material/FormControlLabel";
import FormGroup from "@mui/material/FormGroup";
import FormLabel from "@mui/material/FormLabel";
import InputLabel from "@mui/material/InputLabel";
import MenuItem from "@mui/material/MenuItem";
import Select from "@mui/material/Select";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { call, requestId } from "../../api/client";
import { formatUsd, parseUsd } from "../../api/money";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { enumChoices, enumLabel, enumOf, formatDate, tierLabel } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import { Panel } from "../../components/Panel";
import { CouponSchema, CouponsService, RedemptionSchema, type Coupon } from "../../gen/creditmeter/coupons/v1/coupons_pb";
import { useTiers } from "../overview/queries";

const kindEnum = enumOf(CouponSchema, "kind");
const kinds = enumChoices(kindEnum);
const GRANT = kinds.find((k) => /CREDIT/i.test(kindEnum.values.find((v) => v.number === k.value)?.name ?? ""))?.value ?? 1;
const statusEnum = enumOf(RedemptionSchema, "status");
const KEY = ["admin-coupons"] as const;

interface Draft {
  code: string;
  description: string;
  kind: number;
  amount: string;
  creditExpiryDays: string;
  trialTier: string;
  trialDays: string;
  expires: string;
  maxRedemptions: string;
  perUserLimit: string;
  eligibleTiers: string[];
  firstTimeOnly: boolean;
}

const empty: Draft = {
  code: "",
  description: "",
  kind: GRANT,
  amount: "",
  creditExpiryDays: "",
  trialTier: "",
  trialDays: "",
  expires: "",
  maxRedemptions: "",
  perUserLimit: "1",
  eligibleTiers: [],
  firstTimeOnly: false,
};

function CreateCouponForm() {
  const client = useQueryClient();
  const tiers = useTiers();
  const [draft, setDraft] = useState<Draft>(empty);
  const [id, setId] = useState(requestId);
  const [inputError, setInputError] = useState("");
  const set = (patch: Partial<Draft>) => setDraft({ ...draft, ...patch });
  const isGrant = draft.kind === GRANT;
  const create = useMutation({
    mutationFn: (d: Draft) =>
      call(CouponsService.method.createCoupon, {
        code: d.code.trim(),
        description: d.description.trim(),
        kind: d.kind,
        creditAmountNanos: isGrant ? parseUsd(d.amount) : 0n,
        creditExpiryDays: isGrant && d.creditExpiryDays ? Number(d.creditExpiryDays) : 0,
        trialTier: isGrant ? "" : d.trialTier,
        trialDays: isGrant ? 0 : Number(d.trialDays || 0),
        expiresAt: d.expires ? timestampFromDate(new Date(`${d.expires}T23:59:59`)) : undefined,
        maxRedemptions: BigInt(d.maxRedemptions || "0"),
        perUserLimit: Number(d.perUserLimit || "0"),
        eligibleTiers: d.eligibleTiers,
        firstTimeOnly: d.firstTimeOnly,
        requestId: id,
      }),
    onSuccess: () => {
      setDraft(empty);
      setId(requestId());
      void client.invalidateQueries({ queryKey: KEY });
    },
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    setInputError("");
    if (isGrant) {
      try {
        parseUsd(draft.amount);
      } catch (error) {
        setInputError(error instanceof Error ? error.message : "Invalid amount");
        return;
      }
    }
    create.mutate(draft);
  }
  return (
    <Panel title="Create a coupon" id="create-coupon">
      <Box component="form" onSubmit={submit} sx={{ display: "grid", gap: 1.5, gridTemplateColumns: { xs: "1fr", sm: "1fr 1fr" } }}>
        <TextField label="Code" value={draft.code} onChange={(e) => set({ code: e.target.value.toUpperCase() })} required />
        <FormControl>
          <InputLabel id="coupon-kind-label">Kind</InputLabel>
          <Select labelId="coupon-kind-label" label="Kind" value={draft.kind} onChange={(e) => set({ kind: Number(e.target.value) })}>
            {kinds.map((k) => (
              <MenuItem key={k.value} value={k.value}>
                {k.label}
              </MenuItem>
            ))}
          </Select>
        </FormControl>
        <TextField
          label="Description"
          value={draft.description}
          onChange={(e) => set({ description: e.target.value })}
          sx={{ gridColumn: { sm: "1 / -1" } }}
        />
        {isGrant ? (
          <>
            <TextField
              label="Credits (USD)"
              value={draft.amount}
              onChange={(e) => set({ amount: e.target.value })}
              required
              error={!!inputError}
              helperText={inputError || " "}
            />
            <TextField
              label="Credits expire after (days)"
              type="number"
              value={draft.creditExpiryDays}
              onChange={(e) => set({ creditExpiryDays: e.target.value })}
              helperText="Empty: never"
            />
          </>
        ) : (
          <>
            <FormControl>
              <InputLabel id="trial-tier-label">Trial tier</InputLabel>
              <Select
                labelId="trial-tier-label"
                label="Trial tier"
                value={draft.trialTier}
                onChange={(e) => set({ trialTier: e.target.value })}
              >
                {tiers.data?.tiers.map((t) => (
                  <MenuItem key={t.tierId} value={t.tierId}>
                    {t.displayName}
                  </MenuItem>
                ))}
              </Select>
            </FormControl>
            <TextField
              label="Trial length (days)"
              type="number"
              value={draft.trialDays}
              onChange={(e) => set({ trialDays: e.target.value })}
              required
            />
          </>
        )}
        <TextField
          label="Coupon expires on"
          type="date"
          value={draft.expires}
          onChange={(e) => set({ expires: e.target.value })}
          slotProps={{ inputLabel: { shrink: true } }}
          helperText="Empty: never"
        />
        <TextField
          label="Total redemptions"
          type="number"
          value={draft.maxRedemptions}
          onChange={(e) => set({ maxRedemptions: e.target.value })}
          helperText="Empty: unlimited"
        />
        <TextField
          label="Redemptions per user"
          type="number"
          value={draft.perUserLimit}
          onChange={(e) => set({ perUserLimit: e.target.value })}
        />
        <FormControl component="fieldset" sx={{ gridColumn: { sm: "1 / -1" } }}>
          <FormLabel component="legend">Eligible tiers (none ticked: all)</FormLabel>
          <FormGroup row>
            {tiers.data?.tiers.map((t) => (
              <FormControlLabel
                key={t.tierId}
                label={t.displayName}
                control={
                  <Checkbox
                    checked={draft.eligibleTiers.includes(t.tierId)}
                    onChange={(e) =>
                      set({
                        eligibleTiers: e.target.checked
                          ? [...draft.eligibleTiers, t.tierId]
                          : draft.eligibleTiers.filter((x) => x !== t.tierId),
                      })
                    }
                  />
                }
              />
            ))}
          </FormGroup>
        </FormControl>
        <FormControlLabel
          control={<Checkbox checked={draft.firstTimeOnly} onChange={(e) => set({ firstTimeOnly: e.target.checked })} />}
          label="New users only (never redeemed a coupon)"
          sx={{ gridColumn: { sm: "1 / -1" } }}
        />
        <Button type="submit" variant="contained" disabled={create.isPending} sx={{ gridColumn: { sm: "1 / -1" } }}>
          Create coupon
        </Button>
      </Box>
      {create.isError ? (
        <Box sx={{ mt: 1.5 }}>
          <ErrorAlert error={create.error} />
        </Box>
      ) : null}
      {create.isSuccess ? (
        <Alert severity="success" role="status" sx={{ mt: 1.5 }}>
          Coupon {create.data.coupon?.code} created.
        </Alert>
      ) : null}
    </Panel>
  );
}

function Redemptions({ coupon, onClose }: { coupon: Coupon; onClose: () => void }) {
  const redemptions = useQuery({
    queryKey: ["admin-redemptions", coupon.code],
    queryFn: ({ signal }) => call(CouponsService.method.listRedemptions, { code: coupon.code, pageSize: 100 }, signal),
  });
  const rows = redemptions.data?.redemptions ?? [];
  return (
    <Dialog open onClose={onClose} aria-labelledby="redemptions-title" fullWidth maxWidth="md">
      <DialogTitle id="redemptions-title">Redemptions of {coupon.code}</DialogTitle>
      <DialogContent>
        {redemptions.error ? <ErrorAlert error={redemptions.error} /> : null}
        {redemptions.isSuccess && rows.length === 0 ? <EmptyState title="Nobody has redeemed this coupon yet" /> : null}
        {rows.length ? (
          <Box sx={{ overflowX: "auto" }}>
            <Table size="small" aria-label={`Redemptions of ${coupon.code}`}>
              <TableHead>
                <TableRow>
                  <TableCell>User</TableCell>
                  <TableCell>Status</TableCell>
                  <TableCell>Granted</TableCell>
                  <TableCell>When</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {rows.map((r) => (
                  <TableRow key={r.redemptionId}>
                    <TableCell>{r.userId}</TableCell>
                    <TableCell>{enumLabel(statusEnum, r.status)}</TableCell>
                    <TableCell>
                      {r.grant?.creditsNanos
                        ? formatUsd(r.grant.creditsNanos)
                        : r.grant?.trialTier
                          ? `${tierLabel(r.grant.trialTier)} trial`
                          : ""}
                    </TableCell>
                    <TableCell>{formatDate(r.createdAt, true)}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </Box>
        ) : null}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Close</Button>
      </DialogActions>
    </Dialog>
  );
}

export default function CouponsAdminPage() {
  const client = useQueryClient();
  const [viewing, setViewing] = useState<Coupon | null>(null);
  const [confirming, setConfirming] = useState<Coupon | null>(null);
  const coupons = useQuery({
    queryKey: KEY,
    queryFn: ({ signal }) => call(CouponsService.method.listCoupons, { includeDisabled: true, pageSize: 200 }, signal),
  });
  // One request id per confirmation dialog: a double click disables once.
  const [disableId, setDisableId] = useState(requestId);
  const disable = useMutation({
    mutationFn: (code: string) =>
      call(CouponsService.method.disableCoupon, { code, reason: "disabled in the admin dashboard", requestId: disableId }),
    onSuccess: () => {
      setConfirming(null);
      setDisableId(requestId());
      void client.invalidateQueries({ queryKey: KEY });
    },
  });
  const rows = coupons.data?.coupons ?? [];
  return (
    <>
      <PageHeader title="Coupon admin" subtitle="Create codes that grant credits or plan trials, watch their use, and withdraw them." />
      <Box sx={{ display: "grid", gap: 2.5 }}>
        <CreateCouponForm />
        <Panel title="Coupons" id="coupon-list" loading={coupons.isPending} error={coupons.error}>
          {rows.length === 0 ? (
            <EmptyState title="No coupons yet">Create one above.</EmptyState>
          ) : (
            <Box sx={{ overflowX: "auto" }}>
              <Table size="small" aria-labelledby="coupon-list-title">
                <TableHead>
                  <TableRow>
                    <TableCell>Code</TableCell>
                    <TableCell>Grants</TableCell>
                    <TableCell align="right">Redeemed</TableCell>
                    <TableCell>Expires</TableCell>
                    <TableCell>Status</TableCell>
                    <TableCell>Actions</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {rows.map((c) => (
                    <TableRow key={c.code} data-testid={`coupon-${c.code}`}>
                      <TableCell sx={{ fontWeight: 650 }}>{c.code}</TableCell>
                      <TableCell>
                        {c.creditAmountNanos > 0n ? formatUsd(c.creditAmountNanos) : `${tierLabel(c.trialTier)} trial, ${c.trialDays} days`}
                      </TableCell>
                      <TableCell align="right">
                        {c.redemptionCount.toString()}
                        {c.maxRedemptions > 0n ? ` / ${c.maxRedemptions}` : ""}
                      </TableCell>
                      <TableCell>{c.expiresAt ? formatDate(c.expiresAt) : "Never"}</TableCell>
                      <TableCell>
                        {c.disabled ? <Chip size="small" label="Disabled" /> : <Chip size="small" color="success" label="Active" />}
                      </TableCell>
                      <TableCell sx={{ whiteSpace: "nowrap" }}>
                        <Button size="small" onClick={() => setViewing(c)} aria-label={`Redemptions of ${c.code}`}>
                          Redemptions
                        </Button>
                        {!c.disabled ? (
                          <Button size="small" color="error" onClick={() => setConfirming(c)} aria-label={`Disable ${c.code}`}>
                            Disable
                          </Button>
                        ) : null}
                      </TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </Box>
          )}
        </Panel>
      </Box>
      {viewing ? <Redemptions coupon={viewing} onClose={() => setViewing(null)} /> : null}
      <Dialog open={confirming !== null} onClose={() => setConfirming(null)} aria-labelledby="disable-title">
        <DialogTitle id="disable-title">Disable {confirming?.code}?</DialogTitle>
        <DialogContent>
          Nobody can redeem it afterwards. Credits already granted stay with their users.
          {disable.isError ? (
            <Box sx={{ mt: 1.5 }}>
              <ErrorAlert error={disable.error} />
            </Box>
          ) : null}
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setConfirming(null)}>Cancel</Button>
          <Button
            color="error"
            variant="contained"
            disabled={disable.isPending}
            onClick={() => confirming && disable.mutate(confirming.code)}
          >
            Disable coupon
          </Button>
        </DialogActions>
      </Dialog>
    </>
  );
}
