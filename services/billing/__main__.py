from services.billing.service import main

main()
