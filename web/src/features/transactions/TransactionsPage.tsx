import { PageHeader } from "../../components/PageHeader";
import { TransactionsTable } from "./TransactionsTable";

export default function TransactionsPage() {
  return (
    <>
      <PageHeader title="Transactions" subtitle="Every credit and charge on your account, newest first." />
      <TransactionsTable user="" />
    </>
  );
}
